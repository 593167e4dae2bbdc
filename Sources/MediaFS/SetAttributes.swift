import Foundation

/// The changes of a `setattr` call; `nil` means unchanged.
public struct SetAttributes: Sendable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: Int64?
    public var accessed: Date?
    public var modified: Date?

    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: Int64? = nil, accessed: Date? = nil, modified: Date? = nil) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.accessed = accessed
        self.modified = modified
    }
}
