import Crypto
import Foundation
import MediaFS
import MediaManager
import NIOCore
import MediaServerTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Filesystem logic against the embedded server (no FUSE)")
struct FilesystemTests {
    @Test("folders are directories, files are files; duplicate and slash names are unique")
    func namespace() async throws {
        try await FilesystemFixture.with { fx in
            let folder = try await fx.client.folders.create(displayName: "album")
            try await fx.upload("a.jpg", Data("1".utf8), folder: folder.id)
            try await fx.upload("a.jpg", Data("22".utf8), folder: folder.id)
            try await fx.upload("x/y.png", Data("333".utf8), folder: folder.id)
            _ = try await fx.client.folders.create(displayName: "a.jpg", parentFolderId: folder.id)

            #expect(try await fx.names(1) == ["album"])
            let album = try await fx.filesystem.lookup(parent: 1, name: "album")
            #expect(album.attributes.kind == .directory)
            #expect(try await fx.names(album.attributes.inode) == ["a.jpg", "a (2).jpg", "x∕y.png", "a (3).jpg"])
            let second = try await fx.filesystem.lookup(parent: album.attributes.inode, name: "a (2).jpg")
            #expect(second.attributes.size == 2)
            #expect(second.attributes.kind == .file)
            #expect(second.attributes.blockSize == 1 << 20)
            let folderEntry = try await fx.filesystem.lookup(parent: album.attributes.inode, name: "a (3).jpg")
            #expect(folderEntry.attributes.kind == .directory)
            await #expect(throws: FilesystemError.self) { try await fx.filesystem.lookup(parent: album.attributes.inode, name: "nope") }

            // Inode numbers are stable.
            let again = try await fx.filesystem.lookup(parent: 1, name: "album")
            #expect(again.attributes.inode == album.attributes.inode)
        }
    }

    @Test("reads: whole file, random offsets, past the end, private files")
    func reads() async throws {
        try await FilesystemFixture.with { fx in
            let data = Data.random(3 << 20 + 12345)
            try await fx.upload("big.bin", data)
            try await fx.upload("secret.bin", Data("private bytes".utf8))
            let privateURL = try await fx.client.files.generateFileUploadUrl(
                mimeType: "application/octet-stream", options: UploadOptions(fileName: "p.bin", private: true))
            _ = try await fx.client.uploads.upload(to: privateURL.uploadUrl, fileName: "p.bin", bytes: .init(string: "hidden"))

            let entry = try await fx.filesystem.lookup(parent: 1, name: "big.bin")
            #expect(try await fx.readAll(entry.attributes.inode) == data)
            #expect(try await fx.readAll(entry.attributes.inode, chunk: 1 << 20) == data)

            let handle = try await fx.filesystem.open(entry.attributes.inode, flags: O_RDONLY)
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<40 {
                let offset = Int.random(in: 0..<data.count, using: &generator)
                let size = Int.random(in: 1...300_000, using: &generator)
                let bytes = try await fx.filesystem.read(handle: handle, offset: Int64(offset), size: size)
                #expect(Data(bytes.readableBytesView) == data.subdata(in: offset..<min(data.count, offset + size)))
            }
            #expect(try await fx.filesystem.read(handle: handle, offset: Int64(data.count), size: 10).readableBytes == 0)
            await fx.filesystem.release(handle: handle)

            let hidden = try await fx.filesystem.lookup(parent: 1, name: "p.bin")
            #expect(try await fx.readAll(hidden.attributes.inode) == Data("hidden".utf8))
        }
    }

    @Test("mkdir, rename (within, across, replacing), unlink and rmdir")
    func changes() async throws {
        try await FilesystemFixture.with { fx in
            let a = try await fx.filesystem.mkdir(parent: 1, name: "A").attributes.inode
            let b = try await fx.filesystem.mkdir(parent: 1, name: "B").attributes.inode
            await #expect(throws: FilesystemError.self) { try await fx.filesystem.mkdir(parent: 1, name: "A") }
            let folderA = try #require(try await fx.client.folders.list().folders.first { $0.displayName == "A" })
            try await fx.upload("one.txt", Data("1".utf8), folder: folderA.id)
            try await fx.upload("two.txt", Data("2".utf8), folder: folderA.id)

            try await fx.filesystem.rename(parent: a, name: "one.txt", newParent: a, newName: "uno.txt", flags: 0)
            try await fx.filesystem.rename(parent: a, name: "uno.txt", newParent: b, newName: "uno.txt", flags: 0)
            #expect(try await fx.names(a) == ["two.txt"])
            #expect(try await fx.names(b) == ["uno.txt"])
            // Replacing: the old target goes to the trash.
            try await fx.filesystem.rename(parent: a, name: "two.txt", newParent: b, newName: "uno.txt", flags: 0)
            #expect(try await fx.names(b) == ["uno.txt"])
            let moved = try await fx.filesystem.lookup(parent: b, name: "uno.txt")
            #expect(try await fx.readAll(moved.attributes.inode) == Data("2".utf8))
            #expect(try await fx.client.files.listDeleted().files.map(\.displayName) == ["uno.txt"])

            await #expect(throws: FilesystemError.self) { try await fx.filesystem.rmdir(parent: 1, name: "B") }
            try await fx.filesystem.unlink(parent: b, name: "uno.txt")
            try await fx.filesystem.rmdir(parent: 1, name: "B")
            // A slash typed as its look-alike becomes a slash in the Media Manager.
            try await fx.filesystem.rename(parent: 1, name: "A", newParent: 1, newName: "x∕y", flags: 0)
            #expect(try await fx.client.folders.list().folders.map(\.displayName) == ["x/y"])
            let error = await #expect(throws: FilesystemError.self) {
                try await fx.filesystem.rename(parent: 1, name: "x∕y", newParent: a, newName: "inside", flags: 0)
            }
            #expect(error?.errno == EINVAL)
        }
    }

    @Test("changes made through the API show up after the TTL")
    func remoteChanges() async throws {
        try await FilesystemFixture.with { fx in
            #expect(try await fx.names(1).isEmpty)
            let file = try await fx.upload("late.txt", Data("x".utf8))
            // Within the directory TTL, with room for a loaded machine.
            try await Programs.waitFor("late.txt to be listed", timeout: .seconds(15)) { (try? await fx.names(1)) == ["late.txt"] }
            let entry = try await fx.filesystem.lookup(parent: 1, name: "late.txt")
            _ = try await fx.client.files.update(id: file.id, displayName: "renamed.txt")
            try await Programs.waitFor("the rename to be listed", timeout: .seconds(15)) { (try? await fx.names(1)) == ["renamed.txt"] }
            #expect(try await fx.filesystem.lookup(parent: 1, name: "renamed.txt").attributes.inode == entry.attributes.inode)
        }
    }

    @Test("a size query of a value that changes from moment to moment leaves room for it to grow before the read")
    func xattrSizeAnswers() {
        let value = Array(#"{"rate":1234}"#.utf8)
        #expect(MediaFilesystem.xattrSizeAnswer(name: "user.mediafs.id", value: value) == value.count)
        for name in ["user.mediafs.queue", "user.mediafs.sync", "user.mediafs.uploadState"] {
            #expect(MediaFilesystem.xattrSizeAnswer(name: name, value: value) == value.count + 4096)
        }
        #expect(MediaFilesystem.xattrSizeAnswer(name: "user.mediafs.queue", value: [UInt8](repeating: 32, count: 64_000)) == 65_536)
    }

    @Test("xattrs: read what the Media Manager knows; setting labels updates them")
    func xattrs() async throws {
        try await FilesystemFixture.with { fx in
            let file = try await fx.upload("pic.png", Data("png".utf8), mimeType: "image/png")
            let inode = try await fx.filesystem.lookup(parent: 1, name: "pic.png").attributes.inode
            #expect(try fx.filesystem.listxattr(inode).contains("user.mediafs.hash"))
            #expect(String(decoding: try await fx.filesystem.getxattr(inode, name: "user.mediafs.id"), as: UTF8.self) == file.id)
            #expect(String(decoding: try await fx.filesystem.getxattr(inode, name: "user.mediafs.mimeType"), as: UTF8.self) == "image/png")
            #expect(String(decoding: try await fx.filesystem.getxattr(inode, name: "user.mediafs.mediaType"), as: UTF8.self) == "IMAGE")
            try await fx.filesystem.setxattr(inode, name: "user.mediafs.labels", value: Array("sea, sky".utf8))
            #expect(try await fx.client.files.get(id: file.id).labels == ["sea", "sky"])
            let denied = await #expect(throws: FilesystemError.self) {
                try await fx.filesystem.setxattr(inode, name: "user.mediafs.hash", value: [1])
            }
            #expect(denied?.errno == EPERM)
        }
    }

    @Test("a 1,500-file folder is listed completely, page by page")
    func largeFolder() async throws {
        try await FilesystemFixture.with(configure: { $0.listPageSize = 400 }) { fx in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for index in stride(from: worker, to: 1500, by: 8) {
                            try await fx.upload(String(format: "f%04d.txt", index), Data())
                        }
                    }
                }
                try await group.waitForAll()
            }
            let names = try await fx.names(1)
            #expect(names.count == 1500)
            #expect(Set(names).count == 1500)
        }
    }

    @Test("a read-only key gives a read-only filesystem: changes fail with EROFS")
    func readOnly() async throws {
        try await FilesystemFixture.with(configure: { $0.readOnly = true; $0.readOnlyReason = "read-only key" }) { fx in
            try await fx.upload("keep.txt", Data("k".utf8))
            let error = await #expect(throws: FilesystemError.self) { try await fx.filesystem.mkdir(parent: 1, name: "new") }
            #expect(error?.errno == EROFS)
            let unlink = await #expect(throws: FilesystemError.self) { try await fx.filesystem.unlink(parent: 1, name: "keep.txt") }
            #expect(unlink?.errno == EROFS)
            let inode = try await fx.filesystem.lookup(parent: 1, name: "keep.txt").attributes.inode
            #expect(try await fx.readAll(inode) == Data("k".utf8))
        }
    }

    @Test("O_APPEND writes land at the file's end, even where the offset the kernel sends is behind it (its length shrunk by a short read of older content)", arguments: [false, true])
    func appendsLandAtTheEnd(writeBack: Bool) async throws {
        try await FilesystemFixture.with(writeBack: writeBack) { fx in
            _ = try await fx.upload("a.bin", Data("0123456789".utf8))
            let inode = try await fx.filesystem.lookup(parent: 1, name: "a.bin").attributes.inode
            let handle = try await fx.filesystem.open(inode, flags: O_WRONLY | O_APPEND)
            _ = try await fx.filesystem.write(handle: handle, offset: 4, data: ByteBuffer(string: "ab"))
            _ = try await fx.filesystem.write(handle: handle, offset: 6, data: ByteBuffer(string: "cd"))
            try await fx.filesystem.flush(handle: handle, context: nil)
            await fx.filesystem.release(handle: handle)
            #expect(try await fx.readAll(inode) == Data("0123456789abcd".utf8))
        }
    }
}
