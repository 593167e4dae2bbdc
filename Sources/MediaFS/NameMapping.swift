/// How Media Manager display names become directory entry names.
///
/// Display names are not unique within a folder and may contain `/`. The rules:
/// - `/` becomes `∕` (U+2215 DIVISION SLASH), NUL is dropped, an empty name becomes `unnamed`,
///   and `.`/`..` become `․`/`‥` (U+2024/U+2025);
/// - items are named in creation order (then id): the first keeps its name, later ones with the
///   same name get ` (2)`, ` (3)`, … before the extension (`photo (2).jpg`), skipping numbers
///   already taken.
/// When a name is written back (create, mkdir, rename), `∕` becomes `/` again.
public enum NameMapping {
    public static let slashLookalike: Character = "\u{2215}"

    /// The entry name for a display name, before making it unique.
    public static func entryName(for displayName: String) -> String {
        var name = String(displayName.map { $0 == "/" ? slashLookalike : $0 }.filter { $0 != "\0" })
        if name.isEmpty { name = "unnamed" }
        if name == "." { name = "\u{2024}" }
        if name == ".." { name = "\u{2025}" }
        return name
    }

    /// The display name to send for an entry name typed by a user.
    public static func displayName(for entryName: String) -> String {
        String(entryName.map { $0 == slashLookalike ? "/" : $0 })
    }

    /// Unique entry names for display names given in creation order.
    public static func uniqueNames(_ displayNames: [String], reserved: Set<String> = []) -> [String] {
        var used = reserved
        var result: [String] = []
        result.reserveCapacity(displayNames.count)
        let bases = displayNames.map(entryName(for:))
        let wanted = Set(bases)
        for base in bases {
            var name = base
            if used.contains(name) {
                var counter = 2
                repeat {
                    name = numbered(base, counter)
                    counter += 1
                } while used.contains(name) || wanted.contains(name)
            }
            used.insert(name)
            result.append(name)
        }
        return result
    }

    /// `photo.jpg` → `photo (2).jpg`; `archive` → `archive (2)`; `.hidden` → `.hidden (2)`.
    static func numbered(_ name: String, _ counter: Int) -> String {
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            return "\(name[..<dot]) (\(counter))\(name[dot...])"
        }
        return "\(name) (\(counter))"
    }
}
