import ArgumentParser
import Foundation
import Journal

/// `mediafs status [MOUNTPOINT]`: the upload queue of a mount (or of every mediafs mount).
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a mount's upload queue: files and bytes waiting, in flight, rate, ETA, and failures with their reason.",
        discussion: "Without a mount point, every mediafs mount this process can see is shown.")

    @Argument(help: "A mediafs mount point.")
    var mountpoint: String?

    @Flag(name: .long, help: "Print the queue as JSON.")
    var json = false

    @Flag(name: .long, help: "List every file in the journal, not only failures.")
    var files = false

    func run() throws {
        let targets = mountpoint.map { [URL(fileURLWithPath: $0).standardizedFileURL.path] } ?? QueueAttribute.mounts()
        guard !targets.isEmpty else {
            throw CommandFailure("No mediafs mount is mounted here; give a mount point")
        }
        var unreadable = 0
        for (index, target) in targets.enumerated() {
            let status: QueueStatus
            do {
                status = try QueueAttribute.status(of: target)
            } catch {
                // One mount that does not answer does not hide the others.
                Console.error("\(error)")
                unreadable += 1
                continue
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                Console.line(String(decoding: try encoder.encode(status), as: UTF8.self))
                continue
            }
            if index > 0 { Console.line("") }
            Console.line(Self.describe(status, at: target, allFiles: files))
        }
        if unreadable > 0 { throw ExitCode(1) }
    }

    static func describe(_ status: QueueStatus, at mountpoint: String, allFiles: Bool) -> String {
        var lines = ["\(mountpoint) (\(status.writeBack ? "write-back" : "close waits for the upload"); journal \(status.directory))"]
        lines.append("  writing:   \(status.writing) file(s)")
        lines.append("  queued:    \(status.queued) file(s), \(bytes(status.queuedBytes))")
        lines.append("  in flight: \(status.inFlight) file(s), \(bytes(status.inFlightBytes)) to send")
        var rate = "  rate:      \(bytes(Int64(status.rate)))/s"
        if let eta = status.eta, status.queued + status.inFlight > 0 { rate += ", about \(duration(eta)) left" }
        lines.append(rate)
        lines.append("  journal:   \(bytes(status.unacknowledgedBytes)) not yet in the Media Manager (limit \(bytes(status.maximumBytes)))")
        if status.failed > 0 {
            lines.append("  failed:    \(status.failed) file(s), kept in the journal until you delete them:")
        }
        for file in status.files where allFiles || file.state == "failed" {
            var line = "    \(file.state.padding(toLength: 10, withPad: " ", startingAt: 0)) \(file.name) (\(bytes(file.sent)) of \(bytes(file.size)))"
            if let error = file.error { line += ": \(error)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.up))
        if total < 60 { return "\(total) s" }
        if total < 3600 { return "\(total / 60) min \(total % 60) s" }
        return "\(total / 3600) h \(total % 3600 / 60) min"
    }
}

/// `mediafs sync [MOUNTPOINT]`: waits until every closed file is in the Media Manager.
struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Wait until every file closed in a mount is in the Media Manager (what sync(1) cannot do on FUSE with libfuse 3.14).",
        discussion: "Without a mount point, every mediafs mount this process can see is synced. Exits 1 if files failed.")

    @Argument(help: "A mediafs mount point.")
    var mountpoint: String?

    func run() throws {
        let targets = mountpoint.map { [URL(fileURLWithPath: $0).standardizedFileURL.path] } ?? QueueAttribute.mounts()
        guard !targets.isEmpty else {
            throw CommandFailure("No mediafs mount is mounted here; give a mount point")
        }
        var failed = 0
        for target in targets {
            let status: QueueStatus
            do {
                status = try QueueAttribute.sync(target)
            } catch {
                Console.error("\(error)")
                failed += 1
                continue
            }
            failed += status.failed
            Console.line("\(target): everything closed is in the Media Manager" + (status.failed > 0 ? "; \(status.failed) file(s) failed (see `mediafs status \(target)`)" : ""))
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
