import Hummingbird

/// The request context of the embedded server.
struct MediaRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// JSON bodies of the REST API are small; uploads stream and never go through decoding.
    var maxUploadSize: Int { InputLimits.jsonBodyBytes }
}
