import ArgumentParser
import Foundation
import MediaFS
import MediaManager
import Resumable

#if canImport(Glibc)
import Glibc
#endif

/// `mediafs mount`: the Media Manager as a directory, in the foreground or detached.
struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a Media Manager as a directory.",
        discussion: """
            Folders are directories and files are regular files. Display names are not unique in a \
            Media Manager and may contain '/': in the mount, '/' shows as '∕' (U+2215), and later \
            items with a name already taken get ' (2)', ' (3)', … before the extension, in creation \
            order. Extended attributes user.mediafs.* (id, url, mimeType, mediaType, hash, labels, \
            operationStatus) tell what the Media Manager knows; setting user.mediafs.labels \
            (comma-separated) changes a file's labels.

            In the foreground (the default), Ctrl-C, SIGTERM, umount or fusermount3 -u unmounts: \
            requests in flight finish, then uploads drain (--drain-timeout). With --daemon, and when \
            mount(8) starts it, mediafs detaches and exits 0 once the mount answers, or non-zero with \
            the reason (a refused key, an unreachable server, a busy mount point).

            Every option also has a mount(8) spelling, -o name_with_underscores=VALUE (or -o name for \
            a flag), which /etc/fstab takes in a line of type fuse.mediafs whose source is the folder \
            to mount (media-root for all the media); see mediafs(8).
            """
    )

    @Argument(help: "An empty directory to mount on.")
    var mountpoint: String

    @OptionGroup var connection: ClientOptions

    @Option(name: .long, help: "Mount this folder (its id) instead of the root of the media.")
    var rootFolder: String = FolderID.mediaRoot

    @Option(
        name: .customShort("o"),
        help: ArgumentHelp(
            """
            Mount options, comma-separated: this command's options as name=value or name \
            (api_key_file=FILE, uid=1000, read_only), FUSE's (allow_root, nosuid, nodev, noexec, \
            noatime, …); mount(8)'s (_netdev, nofail, noauto, x-systemd.*) are ignored.
            """, valueName: "options"))
    var options: [String] = []

    @Option(name: .long, help: "Seconds the kernel keeps attributes and names.")
    var attrTTL: Double = 10

    @Option(name: .long, help: "Seconds a folder listing is reused; changes made elsewhere show up within this.")
    var dirTTL: Double = 10

    @Flag(name: .long, help: "close() returns once the bytes are durable in the local journal; uploads follow in the background (see `mediafs status`, `mediafs sync`).")
    var writeBack = false

    @Option(name: .long, help: "How many files are uploaded at once.")
    var transfers: Int = 8

    @Option(name: .long, help: "tus PATCH size in MiB while a file is written: bytes go out once this many have gathered.")
    var chunkSize: Int = 8

    @Option(name: .long, help: ChecksumChoice.help)
    var uploadChecksums = ChecksumChoice(.automatic)

    @Option(name: .long, help: "The most bytes the journal holds that the Media Manager has not acknowledged (e.g. 10G, 512M); beyond it writes wait.")
    var cacheMaxSize: ByteCount = ByteCount(10 << 30)

    @Option(name: .long, help: "Seconds an upload a close() waits for keeps retrying through a network outage before close() fails with EIO.")
    var outageLimit: Double = 300

    @Option(name: .long, help: "Directory of the write journal and other local state (default: $XDG_CACHE_HOME/mediafs).")
    var cacheDir: String?

    @Option(name: .long, help: ArgumentHelp("Owner (user name or id) of files and folders with no stored owner (default: the user mounting).", valueName: "user"))
    var uid: String?

    @Option(name: .long, help: ArgumentHelp("Group (name or id) of files and folders with no stored group (default: the user's group).", valueName: "group"))
    var gid: String?

    @Option(name: .long, help: ArgumentHelp("Octal bits cleared from 0666 (files) and 0777 (folders) that have no stored mode (default: 022).", valueName: "bits"))
    var umask: String?

    @Option(name: .long, help: ArgumentHelp("Octal mode of files with no stored mode (overrides --umask).", valueName: "mode"))
    var fileMode: String?

    @Option(name: .long, help: ArgumentHelp("Octal mode of folders with no stored mode (overrides --umask).", valueName: "mode"))
    var dirMode: String?

    @Flag(name: .long, help: "Let users other than the one mounting use the mount (FUSE allow_other; a user other than root needs user_allow_other in /etc/fuse.conf).")
    var allowOther = false

    @Flag(name: .long, help: "Refuse every change (EROFS), whatever the API key may do (-o ro).")
    var readOnly = false

    @Flag(name: .long, help: "Mount even on a directory that holds files or is already a mount, hiding them while mounted (-o nonempty).")
    var allowNonEmpty = false

    @Flag(name: .long, help: "Detach once mounted: exit 0 when the mount answers, non-zero with the reason otherwise.")
    var daemon = false

    @Flag(name: .long, help: "Stay in the foreground (the default, except when started by mount(8)).")
    var foreground = false

    @Option(name: .long, help: ArgumentHelp("Seconds unmounting waits for uploads in progress to finish.", valueName: "seconds"))
    var drainTimeout: Double = 30

    /// Started by mount(8) (see ``Invocation``): detach unless --foreground, succeed silently.
    @Flag(name: .long, help: .private)
    var helper = false

    /// mount(8)'s -s: unknown -o options are dropped with a warning (handled by ``Invocation``).
    @Flag(name: .long, help: .private)
    var sloppy = false

    /// The pipe a starting process reads the outcome from (see ``Daemon``).
    @Option(name: .long, help: .private)
    var readyFd: Int32?

    @OptionGroup var logging: LoggingOptions

    /// Whether this process starts a detached one and waits for it.
    var detaches: Bool { readyFd == nil && (daemon || (helper && !foreground)) }

    func validate() throws {
        guard attrTTL >= 0, dirTTL >= 0 else { throw ValidationError("TTLs cannot be negative.") }
        guard (1...256).contains(chunkSize) else { throw ValidationError("--chunk-size must be between 1 and 256 MiB.") }
        guard transfers >= 1 else { throw ValidationError("--transfers must be at least 1.") }
        guard outageLimit > 0 else { throw ValidationError("--outage-limit must be positive.") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout cannot be negative.") }
        guard !(daemon && foreground) else { throw ValidationError("--daemon and --foreground exclude each other.") }
        _ = try ownership
        for option in options.flatMap({ $0.split(separator: ",").map(String.init) }) where !MountOptionSpelling.isFUSEOption(option) {
            throw ValidationError("unknown mount option '\(option)'")
        }
    }

    var ownership: Ownership {
        get throws { try Ownership(uid: uid, gid: gid, umask: umask, fileMode: fileMode, directoryMode: dirMode) }
    }

    /// FUSE options: those given with -o, and those the flags stand for.
    var fuseOptions: [String] {
        var fuse = options.flatMap { $0.split(separator: ",").map(String.init) }
        if allowOther { fuse.append("allow_other") }
        if readOnly { fuse.append("ro") }
        return fuse
    }

    func run() async throws {
        MemoryTuning.apply(trimThreshold: MemoryTuning.mountTrimThreshold)
        if detaches {
            try await startDetached()
        } else {
            try await mount()
        }
    }

    /// Checks that cost nothing, made before starting anything: the mount point is free, and
    /// `allow_other` is allowed.
    func preflight(mountpoint: String) throws {
        try MountpointCheck.verify(mountpoint, allowNonEmpty: allowNonEmpty)
        let wantsOthers = allowOther || fuseOptions.contains("allow_root")
        if wantsOthers && geteuid() != 0 && !FuseConfiguration.allowsOtherForUsers() {
            throw CommandFailure(
                "allow_other needs the line user_allow_other in /etc/fuse.conf for a user other than root "
                    + "(it lets users open their mounts to others); add it as root, or mount without allow_other.")
        }
    }
}
