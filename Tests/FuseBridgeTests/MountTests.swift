import Crypto
import Foundation
import MediaFS
import MediaManager
import MediaServerTesting
import Testing

@Suite("Real FUSE mounts", .serialized)
struct MountTests {
    @Test("tree operations with mkdir, ls, stat, find, mv, rm, rmdir")
    func tree() async throws {
        try await MountFixture.with { mount in
            try await mount.sh("mkdir -p a/b/c && mkdir d")
            #expect(try await mount.sh("ls").lines == ["a", "d"])
            #expect(try await mount.sh("find . -type d | sort").lines == [".", "./a", "./a/b", "./a/b/c", "./d"])
            let stat = try await mount.sh("stat -c '%F %a %s' a")
            #expect(stat.output.hasPrefix("directory 755"))
            try await mount.sh("mv a/b d/ && mv d renamed")
            #expect(try await mount.sh("find . | sort").lines == [".", "./a", "./renamed", "./renamed/b", "./renamed/b/c"])
            let notEmpty = try await mount.sh("rmdir renamed/b", expect: 1)
            #expect(notEmpty.output.contains("Directory not empty"))
            try await mount.sh("rmdir renamed/b/c renamed/b")
            #expect(try await mount.sh("ls renamed").lines.isEmpty)
            let folders = try await mount.client.folders.list().folders.map(\.displayName).sorted()
            #expect(folders == ["a", "renamed"])
            #expect(try await mount.sh("ls nope", expect: 2).output.contains("No such file"))
            let statfs = try await mount.sh("stat -f -c %T .")
            #expect(statfs.output.contains("fuse"))
        }
    }

    @Test("content: cat, cmp, dd at random offsets; rm puts the file in the trash")
    func content() async throws {
        try await MountFixture.with { mount in
            let data = Data.random(5 << 20 + 777)
            let local = mount.server.directory.path + "/local.bin"
            try data.write(to: URL(fileURLWithPath: local))
            try await mount.upload("clip.mp4", data)
            try await mount.sh("cmp clip.mp4 \(local)")
            let md5 = Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
            #expect(try await mount.sh("cat clip.mp4 | md5sum").output.hasPrefix(md5))
            #expect(try await mount.sh("stat -c '%s %o' clip.mp4").output.trimmingCharacters(in: .whitespacesAndNewlines) == "\(data.count) 1048576")
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<8 {
                let block = [512, 4096, 65536, 1 << 20].randomElement(using: &generator)!
                let skip = Int.random(in: 0..<(data.count / block), using: &generator)
                let count = Int.random(in: 1...3, using: &generator)
                let mounted = try await mount.sh("dd if=clip.mp4 bs=\(block) skip=\(skip) count=\(count) 2>/dev/null | md5sum")
                let expected = try await mount.sh("dd if=\(local) bs=\(block) skip=\(skip) count=\(count) 2>/dev/null | md5sum")
                #expect(mounted.output == expected.output, "bs=\(block) skip=\(skip) count=\(count)")
            }
            try await mount.sh("rm clip.mp4")
            #expect(try await mount.sh("ls").lines.isEmpty)
            #expect(try await mount.client.files.listDeleted().files.map(\.displayName) == ["clip.mp4"])
        }
    }

    @Test("duplicate and slash-containing names are listed uniquely and readable")
    func names() async throws {
        try await MountFixture.with { mount in
            try await mount.upload("photo.jpg", Data("first".utf8))
            try await mount.upload("photo.jpg", Data("second".utf8))
            try await mount.upload("2024/12/summary.pdf", Data("slash".utf8))
            #expect(try await mount.sh("ls").lines == ["2024∕12∕summary.pdf", "photo (2).jpg", "photo.jpg"])
            #expect(try await mount.sh("cat 'photo (2).jpg'").output == "second")
            #expect(try await mount.sh("cat 2024∕12∕summary.pdf").output == "slash")
            try await mount.sh("mv 'photo (2).jpg' 'a/b.jpg'", expect: 1)
            try await mount.sh("mv 'photo (2).jpg' 'a∕b.jpg'")
            try await mount.sync()
            let names = try await mount.client.files.list().files.map(\.displayName).sorted()
            #expect(names == ["2024/12/summary.pdf", "a/b.jpg", "photo.jpg"])
        }
    }

    @Test("changes made through the API appear in the mount within the TTL")
    func remoteChanges() async throws {
        try await MountFixture.with { mount in
            #expect(try await mount.sh("ls").lines.isEmpty)
            // Each change shows within the listing's and the kernel's TTLs (300 ms here), with room
            // for a loaded machine.
            let bound: Duration = .seconds(15)
            let file = try await mount.upload("new.txt", Data("hello".utf8))
            try await Programs.waitFor("new.txt in the mount", timeout: bound) { (try? await mount.sh("ls"))?.lines == ["new.txt"] }
            #expect(try await mount.sh("cat new.txt").output == "hello")
            _ = try await mount.client.files.update(id: file.id, displayName: "moved.txt")
            try await Programs.waitFor("the rename in the mount", timeout: bound) { (try? await mount.sh("ls"))?.lines == ["moved.txt"] }
            try await mount.client.files.delete(ids: [file.id])
            try await Programs.waitFor("the deletion in the mount", timeout: bound) { (try? await mount.sh("ls"))?.lines.isEmpty == true }
        }
    }

    @Test("getfattr shows the Media Manager's attributes; setfattr sets labels")
    func xattrs() async throws {
        try await MountFixture.with { mount in
            let file = try await mount.upload("pic.png", Data("png".utf8))
            let dump = try await mount.sh("getfattr -d -m - pic.png")
            #expect(dump.output.contains("user.mediafs.id=\"\(file.id)\""))
            #expect(dump.output.contains("user.mediafs.mediaType=\"IMAGE\""))
            #expect(dump.output.contains("user.mediafs.hash=\"\(file.hash)\""))
            try await mount.sh("setfattr -n user.mediafs.labels -v 'red,blue' pic.png")
            #expect(try await mount.client.files.get(id: file.id).labels == ["red", "blue"])
            #expect(try await mount.sh("getfattr --only-values -n user.mediafs.labels pic.png").output == "red,blue")
        }
    }

    @Test("a 5,000-file folder is listed completely by ls")
    func largeFolder() async throws {
        try await MountFixture.with { mount in
            let folder = try await mount.client.folders.create(displayName: "big")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for index in stride(from: worker, to: 5000, by: 8) {
                            try await mount.upload(String(format: "img%04d.jpg", index), Data([UInt8(index % 256)]), folder: folder.id)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let listing = try await mount.sh("ls -l big | tail -n +2")
            #expect(listing.lines.count == 5000)
            #expect(try await mount.sh("ls big | sort -u | wc -l").output.trimmingCharacters(in: .whitespacesAndNewlines) == "5000")
            #expect(try await mount.sh("cat big/img4999.jpg | od -An -tu1").output.trimmingCharacters(in: .whitespacesAndNewlines) == "135")
        }
    }

    @Test("a read-only mount refuses changes with EROFS")
    func readOnly() async throws {
        try await MountFixture.with(configure: { $0.readOnly = true; $0.readOnlyReason = "test key is read-only" }) { mount in
            try await mount.upload("keep.txt", Data("k".utf8))
            #expect(try await mount.sh("mkdir x", expect: 1).output.contains("Read-only file system"))
            #expect(try await mount.sh("rm keep.txt", expect: 1).output.contains("Read-only file system"))
            #expect(try await mount.sh("cat keep.txt").output == "k")
        }
    }
}
