import ArgumentParser
import Foundation

/// The `-o` spelling of a command's options, as mount(8) and /etc/fstab need it: every declared
/// long option `--name-with-dashes` is also `-o name_with_underscores=VALUE`, and every flag
/// `-o name`. The table comes from the command's own declarations, so an option added later gets
/// its `-o` spelling with no code here.
///
/// Other `-o` words are FUSE and mount(8) options: those FUSE knows are passed on to it, those that
/// only mean something to mount(8) or systemd are accepted and ignored, and anything else is an
/// error that names it.
struct MountOptionSpelling: Sendable {
    /// What an underscore name stands for.
    enum Meaning: Equatable, Sendable {
        /// `--long VALUE`.
        case option(long: String)
        /// `--long`.
        case flag(long: String)
    }

    /// Declared options by their `-o` name.
    let declared: [String: Meaning]

    /// `mediafs mount`'s spelling.
    static let mount = MountOptionSpelling(
        command: MountCommand.self,
        aliases: ["ro": .flag(long: "read-only"), "nonempty": .flag(long: "allow-non-empty")])

    /// `-o` names that must not be used even though the option exists.
    static let refused: [String: String] = [
        "api_key":
            "api_key= would put the key in /etc/fstab and in the process list; write it to a file only its owner can read "
            + "(chmod 600 FILE) and use api_key_file=FILE"
    ]

    /// FUSE options passed on to libfuse (`fuse_session_new` refuses any other). `allow_other`
    /// also has a flag of its own, which passes it on.
    static let fuseFlags: Set<String> = [
        "allow_root", "auto_unmount", "default_permissions",
        "suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync",
        "atime", "noatime", "diratime", "nodiratime", "lazytime", "nolazytime",
        "relatime", "norelatime", "strictatime", "nostrictatime",
    ]
    /// (`user=NAME` is what mount(8) records for a mount a user made from fstab.)
    static let fuseValues: Set<String> = ["fsname", "subtype", "max_read", "context", "fscontext", "defcontext", "rootcontext", "user"]

    /// Options of mount(8), fstab and systemd that mean nothing to a FUSE filesystem.
    static let ignoredFlags: Set<String> = [
        "", "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev", "_rnetdev", "nofail", "rw",
        "silent", "loud",
    ]
    static let ignoredPrefixes = ["x-", "X-", "comment="]

    init(declared: [String: Meaning]) {
        self.declared = declared
    }

    /// The spelling of `command`'s long options and flags (not its arguments, hidden options or
    /// `--help`), plus `aliases`.
    init(command: any ParsableArguments.Type, aliases: [String: Meaning] = [:]) {
        var declared = aliases
        for argument in DeclaredArguments.of(command) where argument.visible {
            for long in argument.longNames where long != "help" {
                let name = long.replacingOccurrences(of: "-", with: "_")
                switch argument.kind {
                case .flag: declared[name] = .flag(long: long)
                case .option: declared[name] = .option(long: long)
                case .positional: break
                }
            }
        }
        self.declared = declared
    }

    /// Replaces every `-o LIST` (or `-oLIST`) in `arguments` with the flags it spells; what is
    /// left for FUSE stays as one `-o LIST`.
    ///
    /// - Parameter sloppy: mount(8)'s `-s`: unknown options are dropped with a warning on stderr
    ///   instead of failing.
    func expand(_ arguments: [String], sloppy: Bool = false) throws -> [String] {
        var result: [String] = []
        var fuse: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            var list: String?
            if argument == "-o" {
                guard index + 1 < arguments.count else { throw MountOptionError("-o needs a value, e.g. -o uid=1000,allow_other") }
                list = arguments[index + 1]
                index += 1
            } else if argument.hasPrefix("-o"), !argument.hasPrefix("--") {
                list = String(argument.dropFirst(2))
            }
            if let list {
                for option in list.split(separator: ",", omittingEmptySubsequences: true).map(String.init) {
                    do {
                        switch try translate(option) {
                        case .arguments(let words): result += words
                        case .fuse(let word): fuse.append(word)
                        case .ignored: break
                        }
                    } catch let error as MountOptionError where sloppy {
                        Console.error("mediafs: ignoring \(error) (sloppy mount)")
                    }
                }
            } else {
                result.append(argument)
            }
            index += 1
        }
        if !fuse.isEmpty {
            // Before a `--`, so that it stays an option.
            let end = result.firstIndex(of: "--") ?? result.endIndex
            result.insert(contentsOf: ["-o", fuse.joined(separator: ",")], at: end)
        }
        return result
    }

    /// What one `-o` word becomes.
    enum Translation: Equatable {
        case arguments([String])
        case fuse(String)
        case ignored
    }

    func translate(_ option: String) throws -> Translation {
        let name: String
        let value: String?
        if let equals = option.firstIndex(of: "=") {
            name = String(option[..<equals])
            value = String(option[option.index(after: equals)...])
        } else {
            name = option
            value = nil
        }
        if let reason = Self.refused[name] { throw MountOptionError("mount option '\(name)': \(reason)") }
        switch declared[name] {
        case .option(let long):
            guard let value, !value.isEmpty else {
                throw MountOptionError("mount option '\(name)' needs a value (\(name)=VALUE)")
            }
            return .arguments(["--\(long)", value])
        case .flag(let long):
            guard let value else { return .arguments(["--\(long)"]) }
            switch value.lowercased() {
            case "true", "yes", "1", "on": return .arguments(["--\(long)"])
            case "false", "no", "0", "off": return .ignored
            default: throw MountOptionError("mount option '\(name)' takes no value (not '\(value)')")
            }
        case nil:
            break
        }
        if Self.isFUSEOption(option) { return .fuse(option) }
        if Self.isIgnored(option) { return .ignored }
        throw MountOptionError(
            "unknown mount option '\(name)' (mediafs's own are its --options written name_with_underscores=VALUE, "
                + "e.g. api_key_file=/etc/mediafs/key; see mediafs mount --help)")
    }

    /// Whether libfuse takes `option` (`name` or `name=value`).
    static func isFUSEOption(_ option: String) -> Bool {
        if let equals = option.firstIndex(of: "=") {
            return fuseValues.contains(String(option[..<equals]))
        }
        return fuseFlags.contains(option)
    }

    /// Whether `option` is one of mount(8)'s or systemd's, meaningless to FUSE.
    static func isIgnored(_ option: String) -> Bool {
        ignoredFlags.contains(option) || ignoredPrefixes.contains { option.hasPrefix($0) }
    }
}

/// A `-o` option that cannot be used.
struct MountOptionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
