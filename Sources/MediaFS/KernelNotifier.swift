/// Tells the kernel to drop what it caches of names and inodes, when the filesystem learns that
/// they changed behind its back (renamed or removed elsewhere, duplicates renumbered). The FUSE
/// bridge implements it over `fuse_lowlevel_notify_inval_entry` / `_inode`.
///
/// Calls must not be made from inside the handling of a request about the same names (libfuse
/// would deadlock): the filesystem makes them from its own tasks, after the state changed.
public protocol KernelNotifier: Sendable {
    /// The kernel forgets the entry `name` of directory `parent` (its next lookup asks again).
    func invalidateEntry(parent: InodeNumber, name: String)
    /// The kernel forgets the attributes (and cached content) of `inode`.
    func invalidateInode(_ inode: InodeNumber)
}
