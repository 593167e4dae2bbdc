import ArgumentParser
import Foundation
import MediaServerTesting
import Testing

@testable import mediafs

/// `make install`, the systemd unit, the man page and the help text.
@Suite("install and docs")
struct InstallAndDocsTests {
    /// The repository (where the Makefile is).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// What `make install` puts under PREFIX; the README lists the same files.
    static let installed = [
        "bin/mediafs", "sbin/mount.fuse.mediafs", "share/man/man8/mediafs.8", "lib/systemd/system/mediafs@.service",
        "share/bash-completion/completions/mediafs", "share/zsh/site-functions/_mediafs", "share/fish/vendor_completions.d/mediafs.fish",
    ]

    @Test("make install DESTDIR=… installs the listed files; make uninstall removes them")
    func install() async throws {
        let binary = try Programs.mediafs
        try await TemporaryDirectory.with(prefix: "mediafs-install") { destination in
            let make = try await Programs.run(
                "/usr/bin/make", ["-s", "install", "DESTDIR=\(destination.path)", "BINARY=\(binary)"], directory: Self.root)
            try #require(make.status == 0, "\(make.output)")
            let prefix = destination.path + "/usr/local"
            for file in Self.installed {
                let attributes = try FileManager.default.attributesOfItem(atPath: prefix + "/" + file)
                #expect((attributes[.size] as? Int ?? 0) > 0 || attributes[.type] as? FileAttributeType == .typeSymbolicLink, "\(file)")
            }
            #expect(FileManager.default.isExecutableFile(atPath: prefix + "/bin/mediafs"))
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: prefix + "/sbin/mount.fuse.mediafs") == "/usr/local/bin/mediafs")
            let bash = try String(contentsOfFile: prefix + "/share/bash-completion/completions/mediafs", encoding: .utf8)
            #expect(bash.contains("--api-key-file"))
            let unit = try String(contentsOfFile: prefix + "/lib/systemd/system/mediafs@.service", encoding: .utf8)
            #expect(unit.contains("ExecStart=/usr/local/bin/mediafs mount %f --foreground"))
            #expect(!unit.contains("@BINDIR@"))
            let version = try await Programs.run(prefix + "/bin/mediafs", ["mount", "--help"])
            #expect(version.status == 0)

            let uninstall = try await Programs.run(
                "/usr/bin/make", ["-s", "uninstall", "DESTDIR=\(destination.path)"], directory: Self.root)
            #expect(uninstall.status == 0, "\(uninstall.output)")
            for file in Self.installed {
                #expect((try? FileManager.default.attributesOfItem(atPath: prefix + "/" + file)) == nil, "\(file) left behind")
            }
        }
    }

    @Test("the systemd unit passes systemd-analyze verify", .enabled(if: Programs.which("systemd-analyze") != nil))
    func unitVerifies() async throws {
        let binary = try Programs.mediafs
        try await TemporaryDirectory.with(prefix: "mediafs-unit") { directory in
            // The unit as installed, pointing at the built binary (verify checks ExecStart runs).
            let template = try String(contentsOfFile: Self.root + "/dist/systemd/mediafs@.service", encoding: .utf8)
            try Data(template.replacingOccurrences(of: "@BINDIR@/mediafs", with: binary).utf8)
                .write(to: URL(fileURLWithPath: directory.path + "/mediafs@.service"))
            try FileManager.default.createSymbolicLink(
                atPath: directory.path + "/mediafs@mnt-media.service", withDestinationPath: "mediafs@.service")
            let verify = try await Programs.run(
                try #require(Programs.which("systemd-analyze")), ["verify", "--man=no", directory.path + "/mediafs@mnt-media.service"],
                environment: ["SYSTEMD_LOG_LEVEL": "warning"])
            #expect(verify.status == 0, "\(verify.output)")
            #expect(verify.output.isEmpty, "\(verify.output)")
        }
    }

    @Test("the man page documents every option of mediafs mount")
    func manPage() throws {
        let page = try String(contentsOfFile: Self.root + "/dist/mediafs.8", encoding: .utf8)
            .replacingOccurrences(of: "\\-", with: "-")
        let options = DeclaredArguments.of(MountCommand.self).filter { $0.visible && $0.kind != .positional }.flatMap(\.longNames)
        for option in options where option != "help" {
            #expect(page.contains("--\(option)"), "mediafs.8 does not mention --\(option)")
        }
        #expect(page.contains("fuse.mediafs"))
    }

    @Test("help text is reflowed: no hard line breaks inside a paragraph")
    func reflowedHelp() async throws {
        let commands: [any ParsableCommand.Type] = [MediaFSCommand.self, MountCommand.self, ServeCommand.self, UploadCommand.self, URLCommand.self]
        for command in commands {
            for paragraph in command.configuration.discussion.components(separatedBy: "\n\n") {
                #expect(!paragraph.contains("\n"), "\(command.configuration.commandName ?? ""): \(paragraph)")
            }
        }
        let help = try await Programs.run(try Programs.mediafs, ["mount", "--help"], environment: ["COLUMNS": "100"])
        #expect(help.status == 0)
        #expect(help.output.contains("--api-key-file"))
        #expect(help.output.contains("fuse.mediafs"))
    }
}
