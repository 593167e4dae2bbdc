import Hummingbird
import Logging

/// Logs each request by method, route pattern and status. The route pattern
/// (`/upload/{token}`), never the URI, so tokens and keys stay out of logs.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            context.logger.debug(
                "request",
                metadata: ["method": "\(request.method)", "route": "\(context.endpointPath ?? "-")", "status": "\(response.status.code)"])
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            let level: Logger.Level = status >= 500 ? .error : .debug
            context.logger.log(
                level: level, "request failed",
                metadata: [
                    "method": "\(request.method)", "route": "\(context.endpointPath ?? "-")", "status": "\(status)",
                    "error": "\(error)",
                ])
            throw error
        }
    }
}
