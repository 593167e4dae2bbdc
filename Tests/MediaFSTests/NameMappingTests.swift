import MediaFS
import Testing

@Suite("Name mapping")
struct NameMappingTests {
    @Test("duplicates get (2), (3) before the extension in creation order, skipping taken names")
    func duplicates() {
        #expect(NameMapping.uniqueNames(["a.jpg", "a.jpg", "a.jpg"]) == ["a.jpg", "a (2).jpg", "a (3).jpg"])
        #expect(NameMapping.uniqueNames(["a.jpg", "a.jpg", "a (2).jpg"]) == ["a.jpg", "a (3).jpg", "a (2).jpg"])
        #expect(NameMapping.uniqueNames(["notes", "notes"]) == ["notes", "notes (2)"])
        #expect(NameMapping.uniqueNames([".profile", ".profile"]) == [".profile", ".profile (2)"])
    }

    @Test("slashes, empty and dot names map to look-alikes, and back")
    func specialNames() {
        #expect(NameMapping.entryName(for: "a/b.png") == "a∕b.png")
        #expect(NameMapping.displayName(for: "a∕b.png") == "a/b.png")
        #expect(NameMapping.entryName(for: "") == "unnamed")
        #expect(NameMapping.entryName(for: ".") == "\u{2024}")
        #expect(NameMapping.entryName(for: "..") == "\u{2025}")
        #expect(NameMapping.uniqueNames(["x/y", "x∕y"]) == ["x∕y", "x∕y (2)"])
    }
}
