import Hummingbird
import MediaManager

extension ListQuery {
    /// Reads `parentFolderId`, `mediaTypes`, `private`, `sort.fieldName`, `sort.order`,
    /// `paging.limit` and `paging.cursor` from a list request.
    init(request: Request, trash: Bool, files: Bool) throws {
        let query = request.uri.queryParameters
        if trash {
            self.init(parentId: FolderID.trashRoot, state: .deleted)
        } else {
            let parent = query.get("parentFolderId") ?? FolderID.mediaRoot
            self.init(parentId: parent.isEmpty ? FolderID.mediaRoot : parent, state: .ok)
        }
        if let name = query.get("sort.fieldName"), !name.isEmpty {
            // The service's own docs once spelled it `updateDate`.
            let normalized = name == "updateDate" ? "updatedDate" : name
            guard let field = Field(rawValue: normalized), files || field != .sizeInBytes else {
                throw APIError.invalid("sort.fieldName", "sort.fieldName must be displayName or updatedDate\(files ? " or sizeInBytes" : "")")
            }
            self.field = field
            self.order = .ascending
        }
        if let order = query.get("sort.order"), !order.isEmpty {
            switch order.uppercased() {
            case "ASC": self.order = .ascending
            case "DESC": self.order = .descending
            default: throw APIError.invalid("sort.order", "sort.order must be ASC or DESC")
            }
        }
        if let text = query.get("paging.limit"), !text.isEmpty {
            guard let limit = RequestNumber.parse(text, maximum: Int64(Self.maximumLimit)), limit >= 1 else {
                throw APIError(field: "paging.limit", message: "paging.limit must be between 1 and \(Self.maximumLimit)", rule: "OUT_OF_RANGE")
            }
            self.limit = Int(limit)
        }
        if let text = query.get("paging.cursor"), !text.isEmpty {
            guard text.utf8.count <= InputLimits.cursorLength, let cursor = Self.decodeCursor(text), cursor.field == field.rawValue,
                cursor.order == order.rawValue, cursor.isValid
            else {
                throw APIError.invalid("paging.cursor", "paging.cursor is not a cursor of this listing; start again without it")
            }
            self.cursor = cursor
        }
        let types = query.getAll("mediaTypes").flatMap { $0.split(separator: ",").map(String.init) }
        for type in types where !MediaType.filterable.contains(MediaType(rawValue: type)) {
            throw APIError.invalid("mediaTypes", "Unknown media type '\(type)'")
        }
        self.mediaTypes = types
        if let text = query.get("private"), !text.isEmpty {
            guard let value = Bool(text.lowercased()) else { throw APIError.invalid("private", "private must be true or false") }
            self.isPrivate = value
        }
    }
}
