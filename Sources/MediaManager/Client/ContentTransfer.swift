import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// One content request in flight (GET or HEAD). AsyncHTTPClient calls it on the connection's
/// event loop, where all its state lives: the body goes to a handler there, or into an async
/// sequence whose reader's pace the connection follows, without a thread hop per chunk.
///
/// It also enforces the ``MediaManagerClient/Content/Timeouts``: a watchdog on the loop fails the
/// request when no head came in time, or when the body stalls while its reader waits.
final class ContentTransfer: HTTPClientResponseDelegate, NIOAsyncSequenceProducerDelegate, @unchecked Sendable {
    // @unchecked: mutable state is only touched on `loop` (AsyncHTTPClient calls the delegate
    // there, and every other entry point hops to it); `body` is behind its own lock.
    typealias Response = Void
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, ContentTransfer
    >

    enum Mode {
        /// HEAD: no body.
        case discard
        /// The body goes to ``ContentBody``.
        case stream
        /// The body goes to a handler, on the loop; at most `limit` bytes are accepted.
        case handler(limit: Int64, @Sendable (ByteBuffer) -> Void)
    }

    /// The largest error body kept for the error's message.
    private static let errorBodyLimit = 64 << 10

    let loop: any EventLoop
    private let label: String
    private let timeouts: MediaManagerClient.Content.Timeouts
    private let started = NIODeadline.now()

    // Loop-confined.
    private var mode: Mode
    private var remaining: Int64 = .max
    private var task: HTTPClient.Task<Void>?
    private var source: Producer.Source?
    private var head: HTTPResponseHead?
    private var errorBody: ByteBuffer?
    private var result: Result<Void, MediaManagerError>?
    private var headWaiter: CheckedContinuation<HTTPResponseHead, any Error>?
    private var finishWaiter: CheckedContinuation<Void, any Error>?
    private var paused: EventLoopPromise<Void>?
    private var lastProgress = NIODeadline.now()
    private var watchdog: RepeatedTask?
    private var cancelRequested = false
    private var failure: MediaManagerError?

    private init(loop: any EventLoop, label: String, timeouts: MediaManagerClient.Content.Timeouts, mode: Mode) {
        self.loop = loop
        self.label = label
        self.timeouts = timeouts
        self.mode = mode
        if case .handler(let limit, _) = mode { remaining = limit }
    }

    /// Sends the request. The transfer runs until it completes, fails or is cancelled. In stream
    /// mode the body comes back too (the transfer does not keep it: a body dropped unread cancels
    /// the transfer).
    static func start(
        _ http: HTTPClient,
        url: String,
        method: HTTPMethod,
        range: Range<Int64>?,
        timeouts: MediaManagerClient.Content.Timeouts,
        label: String,
        mode: Mode
    ) throws -> (transfer: ContentTransfer, body: ContentBody?) {
        var headers = HTTPHeaders()
        if let range { headers.add(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound - 1)") }
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: url, method: method, headers: headers)
        } catch {
            throw MediaManagerError(code: .invalidArgument, message: "\(label): not a valid URL", underlying: error)
        }
        let loop = http.eventLoopGroup.next()
        let transfer = ContentTransfer(loop: loop, label: label, timeouts: timeouts, mode: mode)
        var body: ContentBody?
        if case .stream = mode {
            let made = Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16), finishOnDeinit: true, delegate: transfer)
            transfer.source = made.source
            body = ContentBody(made.sequence)
        }
        // The task's delegate and channel share `loop`: no hop per chunk.
        let task = http.execute(request: request, delegate: transfer, eventLoop: .delegateAndChannel(on: loop), logger: nil)
        loop.execute { transfer.attach(task) }
        return (transfer, body)
    }

    /// The response head, once it came with a success status; an error status throws its
    /// ``MediaManagerError`` (with the body's message).
    func response() async throws -> HTTPResponseHead {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                loop.execute {
                    if let head = self.head, self.errorBody == nil {
                        continuation.resume(returning: head)
                    } else if case .failure(let error) = self.result {
                        continuation.resume(throwing: error)
                    } else {
                        self.headWaiter = continuation
                    }
                }
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// Waits until the whole body was received (handler mode).
    func finished() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                loop.execute {
                    switch self.result {
                    case .success: continuation.resume()
                    case .failure(let error): continuation.resume(throwing: error)
                    case nil: self.finishWaiter = continuation
                    }
                }
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// Stops the transfer; whoever waits gets a `cancelled` error.
    func cancel() {
        loop.execute {
            self.cancelRequested = true
            self.task?.cancel()
        }
    }

    // MARK: Loop-confined

    private func attach(_ task: HTTPClient.Task<Void>) {
        self.task = task
        if cancelRequested {
            task.cancel()
            return
        }
        guard result == nil else { return }
        let shortest = min(timeouts.response, timeouts.idle)
        let period = TimeAmount.nanoseconds(max(10_000_000, min(1_000_000_000, Self.nanoseconds(shortest) / 4)))
        watchdog = loop.scheduleRepeatedTask(initialDelay: period, delay: period) { [weak self] _ in self?.checkTimeouts() }
    }

    private func checkTimeouts() {
        guard result == nil else { return }
        let now = NIODeadline.now()
        if head == nil, now - started >= TimeAmount.nanoseconds(Self.nanoseconds(timeouts.response)) {
            fail(MediaManagerError(code: .transport, message: "\(label) timed out: no answer within \(timeouts.response)"))
        } else if head != nil, paused == nil, now - lastProgress >= TimeAmount.nanoseconds(Self.nanoseconds(timeouts.idle)) {
            fail(MediaManagerError(code: .transport, message: "\(label) timed out: no bytes for \(timeouts.idle)"))
        }
    }

    private func fail(_ error: MediaManagerError) {
        failure = failure ?? error
        if let task {
            task.fail(reason: error)
        } else {
            complete(.failure(error))
        }
    }

    private func complete(_ outcome: Result<Void, MediaManagerError>) {
        guard result == nil else { return }
        result = outcome
        watchdog?.cancel()
        watchdog = nil
        paused?.succeed()
        paused = nil
        switch outcome {
        case .success:
            source?.finish()
            finishWaiter?.resume()
        case .failure(let error):
            source?.finish(error)
            headWaiter?.resume(throwing: error)
            finishWaiter?.resume(throwing: error)
        }
        headWaiter = nil
        finishWaiter = nil
        source = nil
    }

    private func mapped(_ error: any Error) -> MediaManagerError {
        if let failure { return failure }
        if let error = error as? MediaManagerError { return error }
        if cancelRequested || (error as? HTTPClientError) == .cancelled {
            return MediaManagerError(code: .cancelled, message: "\(label) was cancelled", underlying: error)
        }
        let text = "\(error)"
        let timedOut = (error as? HTTPClientError) == .readTimeout || (error as? HTTPClientError) == .connectTimeout
        return MediaManagerError(
            code: .transport, message: "\(label) failed\(timedOut ? " (timed out)" : ""): \(text)", underlying: error)
    }

    // MARK: HTTPClientResponseDelegate

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.head = head
        lastProgress = .now()
        if (200..<300).contains(head.status.code) {
            headWaiter?.resume(returning: head)
            headWaiter = nil
        } else {
            errorBody = ByteBuffer()
        }
        return loop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        lastProgress = .now()
        if var errorBody {
            var part = buffer
            if errorBody.readableBytes < Self.errorBodyLimit {
                errorBody.writeBuffer(&part)
                self.errorBody = errorBody
            }
            return loop.makeSucceededVoidFuture()
        }
        switch mode {
        case .discard:
            break
        case .handler(_, let handler):
            let count = Int64(buffer.readableBytes)
            if count > remaining {
                if remaining > 0 { handler(buffer.getSlice(at: buffer.readerIndex, length: Int(remaining))!) }
                remaining = 0
                fail(MediaManagerError(code: .invalidResponse, message: "\(label): the body is longer than the range asked for"))
            } else {
                remaining -= count
                handler(buffer)
            }
        case .stream:
            switch source?.yield(buffer) {
            case .stopProducing:
                let promise = loop.makePromise(of: Void.self)
                paused = promise
                return promise.futureResult
            case .dropped:
                cancelRequested = true
                task.cancel()
            case .produceMore, nil:
                break
            }
        }
        return loop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        if let head, let errorBody {
            complete(.failure(MediaManagerClient.statusError(status: Int(head.status.code), body: errorBody, label: label)))
        } else {
            complete(.success(()))
        }
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        // AsyncHTTPClient reports a request it could not even start from the caller's thread.
        guard loop.inEventLoop else {
            loop.execute { self.complete(.failure(self.mapped(error))) }
            return
        }
        complete(.failure(mapped(error)))
    }

    // MARK: NIOAsyncSequenceProducerDelegate

    func produceMore() {
        loop.execute {
            self.lastProgress = .now()
            self.paused?.succeed()
            self.paused = nil
        }
    }

    func didTerminate() {
        loop.execute {
            guard self.result == nil else { return }
            self.cancelRequested = true
            self.task?.cancel()
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// The body of a ``ContentResponse``: its chunks in order. Iterate it once; dropping it cancels
/// the transfer.
public struct ContentBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let producer: ContentTransfer.Producer

    init(_ producer: ContentTransfer.Producer) {
        self.producer = producer
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: producer.makeAsyncIterator())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: ContentTransfer.Producer.AsyncIterator

        public mutating func next() async throws -> ByteBuffer? {
            try await base.next()
        }
    }
}
