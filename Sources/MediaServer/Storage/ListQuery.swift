import Foundation
import GRDB
import MediaManager

/// A page request over files or folders: keyset paging on (sort key, id), so that pages stay
/// consistent while the folder changes.
struct ListQuery: Sendable {
    enum Field: String, Sendable {
        case displayName, updatedDate, sizeInBytes

        var column: String {
            switch self {
            case .displayName: "displayName"
            case .updatedDate: "updatedDate"
            case .sizeInBytes: "size"
            }
        }
    }

    /// The opaque cursor handed out as `nextCursor.cursors.next`.
    struct Cursor: Codable, Sendable {
        var field: String
        var order: String
        var key: String
        var id: String

        /// Whether the key is a value of its field: a finite date, a size of digits only.
        /// Cursors are made by the server, but they come back from clients.
        var isValid: Bool {
            guard key.utf8.count <= InputLimits.cursorLength, id.utf8.count <= InputLimits.idLength else { return false }
            switch Field(rawValue: field) {
            case .displayName: return true
            case .updatedDate: return Double(key)?.isFinite ?? false
            case .sizeInBytes: return RequestNumber.parse(key) != nil
            case nil: return false
            }
        }
    }

    var parentId: String
    var state: ItemState
    var field: Field = .updatedDate
    var order: SortDirection = .descending
    var limit: Int = 50
    var cursor: Cursor?
    var mediaTypes: [String] = []
    var isPrivate: Bool?

    static let maximumLimit = 1000

    /// Appends the WHERE clause parts for the cursor and the ORDER BY/LIMIT.
    func sql(table: String) -> (String, StatementArguments) {
        var clauses = ["parentId = ?", "state = ?"]
        var arguments: StatementArguments = [parentId, state.rawValue]
        if !mediaTypes.isEmpty {
            clauses.append("mediaType IN (\(mediaTypes.map { _ in "?" }.joined(separator: ",")))")
            for type in mediaTypes { _ = arguments.append(contentsOf: [type]) }
        }
        if let isPrivate {
            clauses.append("isPrivate = ?")
            _ = arguments.append(contentsOf: [isPrivate])
        }
        let comparison = order == .descending ? "<" : ">"
        if let cursor {
            clauses.append("(\(field.column), id) \(comparison) (?, ?)")
            let key: (any DatabaseValueConvertible)? =
                switch field {
                case .displayName: cursor.key
                case .updatedDate: Double(cursor.key)
                case .sizeInBytes: RequestNumber.parse(cursor.key)
                }
            _ = arguments.append(contentsOf: [key, cursor.id])
        }
        let direction = order == .descending ? "DESC" : "ASC"
        let sql = """
            SELECT * FROM \(table) WHERE \(clauses.joined(separator: " AND "))
            ORDER BY \(field.column) \(direction), id \(direction) LIMIT \(limit + 1)
            """
        return (sql, arguments)
    }

    func cursor(after key: String, id: String) -> String {
        let cursor = Cursor(field: field.rawValue, order: order.rawValue, key: key, id: id)
        let data = (try? JSONEncoder().encode(cursor)) ?? Data()
        return Base64URL.encode(data)
    }

    static func decodeCursor(_ text: String) -> Cursor? {
        guard let data = Base64URL.decode(text) else { return nil }
        return try? JSONDecoder().decode(Cursor.self, from: data)
    }
}

/// One page of rows and the cursor of the next one.
struct Page<Row: Sendable>: Sendable {
    var rows: [Row]
    var nextCursor: String?
}
