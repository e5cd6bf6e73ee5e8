import Foundation

/// The reasoning split into sections (vera_mobile/plan.py): tolerant of missing sections and end tokens.
public struct Plan {
    public var sections: [String: String?] // keyed by the manifest's section names
    public var other: String
    public var retouchTokens: [String]
}

public func parsePlan(_ raw: String, spec: PromptSpec) -> Plan {
    let markers = spec.addedTokens // every VeraRetouch token closes the open section, as in plan.py
    let starts = Dictionary(uniqueKeysWithValues: spec.sectionTokens.map { ($0.value[0], $0.key) })
    var sections: [String: String?] = Dictionary(uniqueKeysWithValues: spec.sectionTokens.keys.map { ($0, String?.none) })
    var other: [String] = []
    var retouch: [String] = []
    var current: String?
    var position = raw.startIndex
    while true {
        // The earliest marker from here, the longest one where several start at the same place.
        let match = markers.compactMap { raw.range(of: $0, range: position ..< raw.endIndex) }
            .min { $0.lowerBound < $1.lowerBound || ($0.lowerBound == $1.lowerBound && $0.upperBound > $1.upperBound) }
        let piece = String(raw[position ..< (match?.lowerBound ?? raw.endIndex)])
        if let open = current {
            let sofar = sections[open].flatMap { $0 } ?? ""
            sections[open] = (sofar + piece).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if !piece.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            other.append(piece.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard let match else { break }
        let marker = String(raw[match])
        position = match.upperBound
        current = starts[marker] // a start opens its section; any other marker closes the open one
        if let open = current, sections[open].flatMap({ $0 }) == nil { sections[open] = "" }
        if spec.retouchTokens.contains(marker) { retouch.append(marker) }
    }
    return Plan(sections: sections, other: other.joined(separator: "\n"), retouchTokens: retouch)
}
