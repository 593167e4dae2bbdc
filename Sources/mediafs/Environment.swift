import Foundation

/// Reads the process environment.
enum Environment {
    static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// `$XDG_DATA_HOME/mediafs`, or `~/.local/share/mediafs`.
    static var dataHome: String {
        (value("XDG_DATA_HOME") ?? (NSHomeDirectory() + "/.local/share")) + "/mediafs"
    }

    /// `$XDG_STATE_HOME/mediafs`, or `~/.local/state/mediafs`.
    static var stateHome: String {
        (value("XDG_STATE_HOME") ?? (NSHomeDirectory() + "/.local/state")) + "/mediafs"
    }

    /// `$XDG_CACHE_HOME/mediafs`, or `~/.cache/mediafs`.
    static var cacheHome: String {
        (value("XDG_CACHE_HOME") ?? (NSHomeDirectory() + "/.cache")) + "/mediafs"
    }
}

/// Unbuffered output, so lines reach pipes and logs at once.
enum Console {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
