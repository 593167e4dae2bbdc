/// Cursor paging metadata returned by list endpoints.
public struct PagingMetadata: Sendable, Hashable, Codable {
    public struct Cursors: Sendable, Hashable, Codable {
        public var next: String?
        public init(next: String? = nil) { self.next = next }
    }
    public var cursors: Cursors
    public var hasNext: Bool

    public init(next: String?) {
        self.cursors = Cursors(next: next ?? "")
        self.hasNext = next != nil
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.cursors = try c.decodeIfPresent(Cursors.self, forKey: .cursors) ?? Cursors()
        let next = self.cursors.next ?? ""
        self.hasNext = try c.decodeIfPresent(Bool.self, forKey: .hasNext) ?? !next.isEmpty
    }

    /// The cursor of the next page, or `nil` on the last one.
    public var nextCursor: String? {
        guard hasNext, let next = cursors.next, !next.isEmpty else { return nil }
        return next
    }
}

/// The order of a listing.
public struct SortDirection: RawRepresentable, Sendable, Hashable, Codable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let ascending = SortDirection(rawValue: "ASC")
    public static let descending = SortDirection(rawValue: "DESC")
}

/// A listing's sort field and order.
public struct Sorting: Sendable, Hashable, Codable {
    public var fieldName: String
    public var order: SortDirection
    public init(fieldName: String, order: SortDirection = .ascending) {
        self.fieldName = fieldName
        self.order = order
    }
}

/// A page of files.
public struct ListFilesResponse: Sendable, Hashable, Codable {
    public var files: [FileDescriptor]
    public var nextCursor: PagingMetadata
    public init(files: [FileDescriptor], nextCursor: PagingMetadata) {
        self.files = files
        self.nextCursor = nextCursor
    }
}

/// A page of folders.
public struct ListFoldersResponse: Sendable, Hashable, Codable {
    public var folders: [Folder]
    public var nextCursor: PagingMetadata
    public init(folders: [Folder], nextCursor: PagingMetadata) {
        self.folders = folders
        self.nextCursor = nextCursor
    }
}
