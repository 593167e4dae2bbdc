import Foundation

/// File ids as the API accepts them: a plain id, or a Wix media URL such as
/// `wix:image://v1/<id>/<name>#originWidth=…`, from which the id is taken.
enum FileIDs {
    static func normalize(_ raw: String) -> String {
        guard raw.hasPrefix("wix:"), let range = raw.range(of: "/v1/") else { return raw }
        let rest = raw[range.upperBound...]
        return String(rest.prefix { $0 != "/" && $0 != "#" })
    }
}
