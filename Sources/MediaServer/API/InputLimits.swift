/// Bounds on what one request may carry. Anything past them is a 400 with the error envelope,
/// never stored.
enum InputLimits {
    /// Longest display name (file or folder, upload `fileName`, finalize `?filename=`, tus
    /// `filename` metadata, each `filePath` segment, `downloadFileName`), in Unicode scalars.
    static let nameLength = 1024
    /// Most labels on one file.
    static let labelCount = 100
    /// Longest label, in Unicode scalars.
    static let labelLength = 256
    /// Most ids in one bulk or get-files request.
    static let idsPerRequest = 1000
    /// Longest id accepted in a body (ids the server makes are far shorter).
    static let idLength = 256
    /// Most folders one `filePath` may name.
    static let pathSegments = 32
    /// Longest MIME type (RFC 6838 allows 127 + "/" + 127).
    static let mimeTypeLength = 255
    /// Largest JSON body of the REST API.
    static let jsonBodyBytes = 1 << 20
    /// Longest `paging.cursor`.
    static let cursorLength = 4096

    /// Refuses a display name longer than `nameLength`.
    static func checkName(_ name: String, field: String) throws(APIError) {
        guard fits(name, nameLength) else {
            throw APIError(
                field: field, message: "\(field) must be at most \(nameLength) characters long (it has \(name.unicodeScalars.count))",
                rule: "MAX_LENGTH")
        }
    }

    /// Refuses more than `labelCount` labels, an empty one, or one longer than `labelLength`.
    static func checkLabels(_ labels: [String], field: String) throws(APIError) {
        guard labels.count <= labelCount else {
            throw APIError(field: field, message: "\(field) may hold at most \(labelCount) labels (it has \(labels.count))", rule: "MAX_SIZE")
        }
        for (index, label) in labels.enumerated() {
            guard !label.isEmpty else { throw APIError.invalid("\(field)[\(index)]", "Labels must not be empty") }
            guard fits(label, labelLength) else {
                throw APIError(
                    field: "\(field)[\(index)]", message: "Labels must be at most \(labelLength) characters long", rule: "MAX_LENGTH")
            }
        }
    }

    /// Refuses more than `idsPerRequest` ids, or an id longer than `idLength`.
    static func checkIds(_ ids: [String], field: String) throws(APIError) {
        guard ids.count <= idsPerRequest else {
            throw APIError(field: field, message: "\(field) may hold at most \(idsPerRequest) ids (it has \(ids.count))", rule: "MAX_SIZE")
        }
        if let index = ids.firstIndex(where: { $0.utf8.count > idLength }) {
            throw APIError(field: "\(field)[\(index)]", message: "Ids are at most \(idLength) bytes long", rule: "MAX_LENGTH")
        }
    }

    /// Whether `text` is a MIME type the server will store and echo in `Content-Type`:
    /// `type/subtype` (parameters allowed) in printable ASCII, at most `mimeTypeLength` bytes.
    static func isMIMEType(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (3...mimeTypeLength).contains(bytes.count), bytes.allSatisfy({ (0x21...0x7E).contains($0) || $0 == 0x20 }) else {
            return false
        }
        guard let slash = text.firstIndex(of: "/"), slash != text.startIndex, text.index(after: slash) != text.endIndex else { return false }
        return !text.hasPrefix(" ")
    }

    /// Whether `text` has at most `limit` Unicode scalars.
    static func fits(_ text: String, _ limit: Int) -> Bool {
        text.utf8.count <= limit || text.unicodeScalars.count <= limit
    }
}
