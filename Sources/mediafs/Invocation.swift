import ArgumentParser
import Foundation

/// How `mediafs` was invoked, as the argument list ArgumentParser reads.
///
/// Two forms come from mount(8) rather than a person:
/// - `mediafs SOURCE MOUNTPOINT -o OPTIONS`: what `mount.fuse3` runs (through `/bin/sh`, finding
///   `mediafs` on `PATH`) for an fstab line of type `fuse.mediafs`, or `mediafs#SOURCE` of type
///   `fuse`. It strips `user`, `nofail`, `nouser`, `users`, `auto`, `noauto`, `_netdev`,
///   `setuid=` and `drop_privileges`, and adds `dev` and `suid` unless `nodev`/`nosuid` are there.
/// - `mount.fuse.mediafs SOURCE MOUNTPOINT [-sfnv] [-t TYPE] [-o OPTIONS]`: mount(8) runs a helper
///   of that name directly when it finds one in `/sbin`, with the fstab options unfiltered.
///
/// Both become `mount MOUNTPOINT --root-folder SOURCE --helper -o fsname=SOURCE …`; SOURCE names
/// the folder to mount (`media-root` for all the media). In every `mount` command line, `-o`
/// options are then spelled out as the command's own flags (``MountOptionSpelling``).
struct Invocation: Sendable {
    /// The arguments for ArgumentParser (without the program name).
    let arguments: [String]
    /// mount(8)'s `-f` ("fake"): check the options, mount nothing.
    let fake: Bool
    /// Started as a mount helper by mount(8).
    let isMountHelper: Bool

    /// The invocation of this process, once parsed (the daemon re-executes it).
    nonisolated(unsafe) static var current: Invocation?

    /// Names a helper may be installed as in `/sbin` (mount(8) tries `mount.fuse.mediafs` for
    /// type `fuse.mediafs` before `mount.fuse`).
    static let helperNames: Set<String> = ["mount.fuse.mediafs", "mount.mediafs"]

    init(program: String, arguments: [String]) throws {
        var fake = false
        var arguments = arguments
        if Self.helperNames.contains(program) || Self.isMountFuseForm(arguments) {
            (arguments, fake) = try Self.helperArguments(arguments)
            isMountHelper = true
        } else {
            isMountHelper = false
        }
        if arguments.first == MountCommand.configuration.commandName {
            arguments = try MountOptionSpelling.mount.expand(arguments, sloppy: arguments.contains("--sloppy"))
        }
        self.arguments = arguments
        self.fake = fake
    }

    /// `SOURCE MOUNTPOINT … -o …` where SOURCE is no subcommand: only mount.fuse3 calls mediafs so.
    static func isMountFuseForm(_ arguments: [String]) -> Bool {
        guard arguments.count >= 4, let first = arguments.first, !first.hasPrefix("-"), !arguments[1].hasPrefix("-") else {
            return false
        }
        let commands = Set(MediaFSCommand.configuration.subcommands.map { $0.configuration.commandName ?? "" } + ["help"])
        return !commands.contains(first) && arguments.dropFirst(2).contains("-o")
    }

    /// Turns `SOURCE MOUNTPOINT [-sfnv] [-t TYPE] [-o OPTIONS]…` into `mount` arguments.
    static func helperArguments(_ arguments: [String]) throws -> (arguments: [String], fake: Bool) {
        guard arguments.count >= 2, !arguments[0].hasPrefix("-"), !arguments[1].hasPrefix("-") else {
            throw HelperUsageError(
                "usage: mount.fuse.mediafs SOURCE MOUNTPOINT [-o OPTIONS] (SOURCE is media-root or a folder id)")
        }
        let source = arguments[0]
        let mountpoint = arguments[1]
        if mountpoint.hasPrefix("/dev/fd/") {
            throw HelperUsageError(
                "mount option 'drop_privileges' is not supported (mount.fuse3 hands over \(mountpoint)); "
                    + "leave it out, or run the mount as a user with setuid=USER")
        }
        var result = [MountCommand.configuration.commandName!, mountpoint, "--root-folder", source, "--helper", "-o", "fsname=\(source)"]
        var fake = false
        var index = 2
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "-o":
                guard index + 1 < arguments.count else { throw HelperUsageError("-o needs a value") }
                result += ["-o", arguments[index + 1]]
                index += 1
            case "-t":
                // The type (fuse.mediafs) says nothing more.
                guard index + 1 < arguments.count else { throw HelperUsageError("-t needs a value") }
                index += 1
            case "-n", "-v":
                // No /etc/mtab to write; verbose output is the log's.
                break
            case "-s":
                result.append("--sloppy")
            case "-f":
                fake = true
            case "-N":
                throw HelperUsageError("mounting in another namespace (-N) is not supported")
            default:
                throw HelperUsageError("unexpected argument '\(argument)'; mount(8) passes SOURCE MOUNTPOINT [-o OPTIONS]")
            }
            index += 1
        }
        return (result, fake)
    }
}

/// The mount helper was called with arguments it cannot take.
struct HelperUsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
