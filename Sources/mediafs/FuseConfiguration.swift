import Foundation

/// `/etc/fuse.conf`, which decides whether users other than root may pass `allow_other`.
enum FuseConfiguration {
    static func allowsOtherForUsers(_ text: String? = try? String(contentsOfFile: "/etc/fuse.conf", encoding: .utf8)) -> Bool {
        (text ?? "").split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "user_allow_other" }
    }
}
