import CFuse3
import Foundation
import Logging
import MediaFS
import NIOCore

/// The libfuse low-level operations table. Each callback copies what it was handed (names,
/// buffers, file-info fields), then answers from a task, so FUSE worker threads never block on
/// the network.
enum FuseOperations {
    static func make() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let conn, let userdata else { return }
            let host = Unmanaged<FuseHost>.fromOpaque(userdata).takeUnretainedValue()
            cfuse_conn_want(conn, cfuse_cap_readdirplus())
            cfuse_conn_unwant(conn, cfuse_cap_readdirplus_auto())
            cfuse_conn_want(conn, cfuse_cap_atomic_o_trunc())
            cfuse_conn_unwant(conn, cfuse_cap_writeback_cache())
            // Reads are answered with writev straight from the buffers the bytes arrived in
            // (one copy, into the page cache). FUSE_CAP_SPLICE_WRITE/MOVE would not save it:
            // libfuse splices only from a pipe it first write(2)s memory buffers into (a copy),
            // and falls back to writev for a 1 MiB reply that does not fit its pipe.
            // max_write also sets max_pages: 1 MiB read requests.
            conn.pointee.max_write = 1 << 20
            // The kernel's read-ahead becomes the smaller of this and the mount's read_ahead_kb
            // (which the session raises before this answer, as root).
            conn.pointee.max_readahead = UInt32(clamping: host.readAhead)
            conn.pointee.max_background = 64
            conn.pointee.congestion_threshold = 48
        }
        ops.lookup = { request, parent, name in
            let name = String(cString: name!)
            guard let request else { return }
            // A fresh listing answers here, on the FUSE thread.
            let host = FuseHost.from(request)
            switch host.filesystem.lookupNow(parent: parent, name: name) {
            case .found(let entry)?:
                FuseReply(request, "lookup", host: host).entry(entry)
                return
            case .missing?:
                FuseReply(request, "lookup", host: host).entry(FuseOperations.negativeEntry(host.filesystem))
                return
            case nil:
                break
            }
            FuseHost.run(request, "lookup") { fs, reply in
                do {
                    reply.entry(try await fs.lookup(parent: parent, name: name))
                } catch let error as FilesystemError where error.errno == ENOENT {
                    reply.entry(FuseOperations.negativeEntry(fs))
                }
            }
        }
        ops.forget = { request, inode, count in
            FuseHost.now(request, "forget") { fs, reply in
                fs.forget(inode, count: count)
                reply.none()
            }
        }
        ops.forget_multi = { request, count, forgets in
            let items = (0..<count).map { forgets![$0] }
            FuseHost.now(request, "forget_multi") { fs, reply in
                for item in items { fs.forget(item.ino, count: item.nlookup) }
                reply.none()
            }
        }
        ops.getattr = { request, inode, _ in
            guard let request else { return }
            let host = FuseHost.from(request)
            if let attributes = host.filesystem.getattrNow(inode) {
                FuseReply(request, "getattr", host: host).attributes(attributes, ttl: host.filesystem.configuration.attributeTTL)
                return
            }
            FuseHost.run(request, "getattr") { fs, reply in
                reply.attributes(try await fs.getattr(inode), ttl: fs.configuration.attributeTTL)
            }
        }
        ops.setattr = { request, inode, attr, toSet, info in
            let changes = FuseOperations.setAttributes(attr!.pointee, toSet)
            let handle = info?.pointee.fh
            guard let request else { return }
            // chmod, chown and times need nothing remote: answered here.
            let host = FuseHost.from(request)
            do {
                if let attributes = try host.filesystem.setattrNow(inode, changes) {
                    FuseReply(request, "setattr", host: host).attributes(attributes, ttl: host.filesystem.configuration.attributeTTL)
                    return
                }
            } catch {
                FuseReply(request, "setattr", host: host).error(error)
                return
            }
            FuseHost.run(request, "setattr") { fs, reply in
                reply.attributes(try await fs.setattr(inode, changes, handle: handle), ttl: fs.configuration.attributeTTL)
            }
        }
        ops.mkdir = { request, parent, name, mode in
            let name = String(cString: name!)
            let context = FuseHost.context(request!)
            FuseHost.run(request, "mkdir") { fs, reply in
                reply.entry(try await fs.mkdir(parent: parent, name: name, mode: mode, context: context))
            }
        }
        ops.unlink = { request, parent, name in
            let name = String(cString: name!)
            FuseHost.run(request, "unlink") { fs, reply in
                try await fs.unlink(parent: parent, name: name)
                reply.ok()
            }
        }
        ops.rmdir = { request, parent, name in
            let name = String(cString: name!)
            FuseHost.run(request, "rmdir") { fs, reply in
                try await fs.rmdir(parent: parent, name: name)
                reply.ok()
            }
        }
        ops.rename = { request, parent, name, newParent, newName, flags in
            let name = String(cString: name!)
            let newName = String(cString: newName!)
            FuseHost.run(request, "rename") { fs, reply in
                try await fs.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags)
                reply.ok()
            }
        }
        ops.open = { request, inode, info in
            let flags = info!.pointee.flags
            let context = FuseHost.context(request!)
            FuseHost.run(request, "open") { fs, reply in
                // O_DIRECT reads bypass the page cache as plain synchronous requests (which a
                // signal can interrupt), not as the kernel's asynchronous direct I/O.
                reply.open(handle: try await fs.open(inode, flags: flags, context: context), directIO: flags & cfuse_o_direct() != 0)
            }
        }
        ops.create = { request, parent, name, mode, info in
            let name = String(cString: name!)
            let flags = info!.pointee.flags
            let context = FuseHost.context(request!)
            FuseHost.run(request, "create") { fs, reply in
                let (entry, handle) = try await fs.create(parent: parent, name: name, mode: mode, flags: flags, context: context)
                reply.created(entry, handle: handle)
            }
        }
        ops.write = { request, _, buffer, size, offset, info in
            let handle = info!.pointee.fh
            let bytes = UnsafeRawBufferPointer(start: buffer, count: size)
            // Most writes go straight into the journal file from the kernel's buffer, on this
            // thread: no copy, no task.
            guard let request else { return }
            let host = FuseHost.from(request)
            do {
                if let written = try host.filesystem.writeNow(handle: handle, offset: Int64(offset), bytes: bytes) {
                    FuseReply(request, "write", host: host).written(written)
                    return
                }
            } catch {
                FuseReply(request, "write", host: host).error(error)
                return
            }
            // Otherwise the write waits (for room in the journal, or for the file's current
            // content): the buffer belongs to the FUSE thread, so it is copied first.
            let data = ByteBuffer(bytes: bytes)
            FuseHost.run(request, "write") { fs, reply in
                reply.written(try await fs.write(handle: handle, offset: Int64(offset), data: data))
            }
        }
        ops.read = { request, _, size, offset, info in
            let handle = info!.pointee.fh
            guard let request else { return }
            // Bytes read ahead are answered here, on the FUSE thread: no task, no hop.
            let host = FuseHost.from(request)
            if let buffers = host.filesystem.readNow(handle: handle, offset: Int64(offset), size: size) {
                FuseReply(request, "read", host: host).buffers(buffers)
                return
            }
            FuseHost.run(request, "read") { fs, reply in
                reply.buffers(try await fs.readBuffers(handle: handle, offset: Int64(offset), size: size))
            }
        }
        ops.flush = { request, _, info in
            let handle = info!.pointee.fh
            let context = FuseHost.context(request!)
            FuseHost.run(request, "flush") { fs, reply in
                try await fs.flush(handle: handle, context: context)
                reply.ok()
            }
        }
        ops.fsync = { request, _, _, info in
            let handle = info!.pointee.fh
            FuseHost.run(request, "fsync") { fs, reply in
                try await fs.fsync(handle: handle)
                reply.ok()
            }
        }
        ops.fallocate = { request, _, _, _, _, _ in
            FuseHost.now(request, "fallocate") { _, reply in reply.error(EOPNOTSUPP) }
        }
        ops.release = { request, _, info in
            let handle = info!.pointee.fh
            FuseHost.run(request, "release") { fs, reply in
                await fs.release(handle: handle)
                reply.ok()
            }
        }
        ops.opendir = { request, inode, _ in
            FuseHost.run(request, "opendir") { fs, reply in
                reply.open(handle: try await fs.opendir(inode))
            }
        }
        ops.readdir = { request, _, size, offset, info in
            let handle = info!.pointee.fh
            FuseHost.now(request, "readdir") { fs, reply in
                // A dirent takes at least 32 bytes.
                let entries = try fs.readdir(handle: handle, offset: Int(offset), limit: size / 32 + 1)
                reply.directory(size: size) { request, buffer, size in
                    var used = 0
                    for entry in entries {
                        var st = FuseReply.stat(entry.attributes)
                        let needed = entry.name.withCString { name in
                            fuse_add_direntry(request, buffer + used, size - used, name, &st, off_t(entry.nextOffset))
                        }
                        if used + needed > size { break }
                        used += needed
                    }
                    return used
                }
            }
        }
        ops.readdirplus = { request, _, size, offset, info in
            let handle = info!.pointee.fh
            FuseHost.now(request, "readdirplus") { fs, reply in
                // A direntplus takes at least 160 bytes.
                let entries = try fs.readdir(handle: handle, offset: Int(offset), limit: size / 160 + 1)
                let ttl = fs.configuration
                reply.directory(size: size) { request, buffer, size in
                    var used = 0
                    for entry in entries {
                        var parameters = FuseReply.entryParameters(
                            EntryReply(attributes: entry.attributes, entryTTL: ttl.entryTTL, attributeTTL: ttl.attributeTTL))
                        let needed = entry.name.withCString { name in
                            fuse_add_direntry_plus(request, buffer + used, size - used, name, &parameters, off_t(entry.nextOffset))
                        }
                        if used + needed > size { break }
                        used += needed
                        // Each entry handed out (but . and ..) is a lookup the kernel will forget.
                        if !entry.isSelfOrParent { fs.lookedUp(entry.attributes.inode) }
                    }
                    return used
                }
            }
        }
        ops.releasedir = { request, _, info in
            let handle = info!.pointee.fh
            FuseHost.now(request, "releasedir") { fs, reply in
                fs.releasedir(handle: handle)
                reply.ok()
            }
        }
        ops.statfs = { request, _ in
            FuseHost.now(request, "statfs") { fs, reply in reply.statfs(fs.statfs()) }
        }
        ops.getxattr = { request, inode, name, size in
            let name = String(cString: name!)
            guard name.hasPrefix("user.") else {
                // Only user.* attributes exist here. "Not supported" (rather than "no data") lets
                // ls -l stop asking for security.selinux and ACLs file after file.
                FuseHost.now(request, "getxattr") { _, reply in reply.error(EOPNOTSUPP) }
                return
            }
            FuseHost.run(request, "getxattr") { fs, reply in
                let value = try await fs.getxattr(inode, name: name)
                if size == 0 {
                    reply.xattrSize(MediaFilesystem.xattrSizeAnswer(name: name, value: value))
                } else if size < value.count {
                    reply.error(ERANGE)
                } else {
                    reply.bytes(value)
                }
            }
        }
        ops.listxattr = { request, inode, size in
            FuseHost.now(request, "listxattr") { fs, reply in
                let names: [UInt8] = try fs.listxattr(inode).flatMap { Array($0.utf8) + [UInt8(0)] }
                if size == 0 {
                    reply.xattrSize(names.count)
                } else if size < names.count {
                    reply.error(ERANGE)
                } else {
                    reply.bytes(names)
                }
            }
        }
        ops.setxattr = { request, inode, name, value, size, _ in
            let name = String(cString: name!)
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            FuseHost.run(request, "setxattr") { fs, reply in
                try await fs.setxattr(inode, name: name, value: bytes)
                reply.ok()
            }
        }
        ops.removexattr = { request, inode, name in
            let name = String(cString: name!)
            FuseHost.run(request, "removexattr") { fs, reply in
                try await fs.removexattr(inode, name: name)
                reply.ok()
            }
        }
        return ops
    }

    /// The answer for a name that does not exist, which the kernel may cache briefly.
    static func negativeEntry(_ filesystem: MediaFilesystem) -> EntryReply {
        let now = Date()
        let attributes = NodeAttributes(
            inode: 0, kind: .file, size: 0, permissions: 0, links: 0, uid: 0, gid: 0, modified: now, changed: now, accessed: now)
        return EntryReply(attributes: attributes, entryTTL: filesystem.configuration.negativeTTL, attributeTTL: .zero)
    }

    /// The changes a `setattr` asks for.
    static func setAttributes(_ attr: stat, _ toSet: Int32) -> SetAttributes {
        var changes = SetAttributes()
        func has(_ flag: Int32) -> Bool { toSet & flag != 0 }
        if has(cfuse_set_attr_mode()) { changes.mode = attr.st_mode }
        if has(cfuse_set_attr_uid()) { changes.uid = attr.st_uid }
        if has(cfuse_set_attr_gid()) { changes.gid = attr.st_gid }
        if has(cfuse_set_attr_size()) { changes.size = Int64(attr.st_size) }
        if has(cfuse_set_attr_mtime_now()) {
            changes.modified = Date()
        } else if has(cfuse_set_attr_mtime()) {
            changes.modified = Date(timeIntervalSince1970: Double(attr.st_mtim.tv_sec) + Double(attr.st_mtim.tv_nsec) / 1e9)
        }
        if has(cfuse_set_attr_atime_now()) {
            changes.accessed = Date()
        } else if has(cfuse_set_attr_atime()) {
            changes.accessed = Date(timeIntervalSince1970: Double(attr.st_atim.tv_sec) + Double(attr.st_atim.tv_nsec) / 1e9)
        }
        return changes
    }
}
