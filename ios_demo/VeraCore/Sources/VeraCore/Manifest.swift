import Foundation

public struct BundleError: Error, CustomStringConvertible {
    public let description: String
}

/// The bundle's manifest.json (vera_mobile/bundle.py reads the same file); the app takes every constant from here.
public struct Manifest {
    public static let schemaVersion = 1
    public let json: [String: Any]
    public let imageSize: Int
    public let hiddenSize: Int
    public let eosIds: Set<Int>
    public let retouchTokenIds: [Int]
    public let prompts: PromptSpec
    public let renderer: [String: Any]
    public let plannerView: PlannerViewInfo
    public let artifacts: [[String: Any]]
    public let golden: [[String: Any]]

    public init(data: Data) throws {
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BundleError(description: "manifest.json is not a JSON object")
        }
        guard json["schema_version"] as? Int == Manifest.schemaVersion else {
            throw BundleError(description: "manifest schema_version \(json["schema_version"] ?? "none") is not supported (this app reads \(Manifest.schemaVersion))")
        }
        guard let model = json["model"] as? [String: Any], let tokenizer = json["tokenizer"] as? [String: Any],
              let prompts = json["prompts"] as? [String: Any], let renderer = json["renderer"] as? [String: Any],
              let artifacts = json["artifacts"] as? [[String: Any]] else {
            throw BundleError(description: "manifest.json lacks model, tokenizer, prompts, renderer or artifacts")
        }
        self.json = json
        imageSize = model["image_size"] as? Int ?? 0
        hiddenSize = model["hidden_size"] as? Int ?? 0
        eosIds = Set(tokenizer["eos_ids"] as? [Int] ?? [])
        retouchTokenIds = tokenizer["retouch_token_ids"] as? [Int] ?? []
        self.prompts = try PromptSpec(prompts)
        self.renderer = renderer
        let planner = (json["preprocessing"] as? [String: Any])?["planner"] as? [String: Any] ?? [:]
        guard let shortSide = planner["short_side"] as? Int, let maxLongSide = planner["max_long_side"] as? Int else {
            throw BundleError(description: "manifest.json lacks preprocessing.planner.short_side or max_long_side")
        }
        plannerView = PlannerViewInfo(shortSide: shortSide, maxLongSide: maxLongSide)
        self.artifacts = artifacts
        golden = json["golden"] as? [[String: Any]] ?? []
    }

    /// The first artifact of one component ("planner", "renderer", ...) on one target ("coreml", ...) matching `path`.
    public func artifact(_ component: String, _ target: String, pathContains: String = "") -> [String: Any]? {
        artifacts.first {
            $0["component"] as? String == component && $0["target"] as? String == target
                && ($0["path"] as? String ?? "").contains(pathContains)
        }
    }

    /// The artifact of one component on one target whose `methods` include `method` (a package may hold several).
    public func artifact(_ component: String, _ target: String, method: String) -> [String: Any]? {
        artifacts.first {
            $0["component"] as? String == component && $0["target"] as? String == target
                && ($0["methods"] as? [String: Any])?[method] != nil
        }
    }

    /// The Core ML function that runs `method`: its own name in a package of several methods (a multifunction
    /// package, e.g. the planner's token embedding and decoder, which share their tied matrix), nil (the
    /// package's only function) otherwise.
    public func function(_ component: String, _ target: String, method: String) -> String? {
        ((artifact(component, target, method: method)?["methods"] as? [String: Any])?.count ?? 0) > 1 ? method : nil
    }

    public func golden(_ component: String, target: String? = nil) -> [String: Any]? {
        golden.first { $0["component"] as? String == component && (target == nil || $0["target"] as? String == target) }
    }
}

/// `preprocessing.planner`: the size of the planner view's first resize, as vera_mobile/views.py computes it.
public struct PlannerViewInfo {
    public let shortSide: Int
    public let maxLongSide: Int

    /// (width, height) after the first resize: short side to `shortSide`, long side truncated; past `maxLongSide` both shrink.
    public func resizedSize(width: Int, height: Int) -> (Int, Int) {
        let (w, h) = width <= height ? (shortSide, height * shortSide / width) : (width * shortSide / height, shortSide)
        let long = max(w, h)
        if long <= maxLongSide { return (w, h) }
        let scale = Double(maxLongSide) / Double(long)
        // Half to even, as Python's round.
        return (max(1, Int((Double(w) * scale).rounded(.toNearestOrEven))), max(1, Int((Double(h) * scale).rounded(.toNearestOrEven))))
    }
}

/// A bundle folder whose files were all checked against their sha256 in the manifest.
public struct VeraBundle {
    public let directory: URL
    public let manifest: Manifest

    public init(directory: URL, verifyHashes: Bool = true) throws {
        let manifestURL = directory.appendingPathComponent("manifest.json")
        guard let data = try? Data(contentsOf: manifestURL) else {
            throw BundleError(description: "\(directory.path): not a bundle (no manifest.json)")
        }
        let manifest = try Manifest(data: data)
        var files = manifest.artifacts.compactMap { a in (a["path"] as? String).map { ($0, a["sha256"] as? String ?? "") } }
        let tokenizer = manifest.json["tokenizer"] as? [String: Any] ?? [:]
        files.append((tokenizer["file"] as? String ?? "", tokenizer["sha256"] as? String ?? ""))
        for (relative, expected) in files {
            let url = directory.appendingPathComponent(relative)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw BundleError(description: "\(relative) is named in the manifest but missing")
            }
            if verifyHashes, try VeraBundle.sha256(of: url) != expected {
                throw BundleError(description: "\(relative) does not match its sha256 in the manifest (corrupt or altered)")
            }
        }
        self.directory = directory
        self.manifest = manifest
    }

    public func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

    /// sha256 of a file; of a folder (.mlpackage), over each file's relative path, a NUL byte and its
    /// bytes, in path-parts order: the rule of vera_mobile/bundle.py's sha256_of.
    public static func sha256(of url: URL) throws -> String {
        var hasher = FileHasher() // CryptoKit where present, PortableSHA256 elsewhere
        var isFolder: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder)
        if isFolder.boolValue {
            let root = url.resolvingSymlinksInPath().path + "/" // enumerated URLs come back resolved (/private/var)
            let files = (FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])?
                .compactMap { $0 as? URL } ?? [])
                .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
                .map { String($0.resolvingSymlinksInPath().path.dropFirst(root.count)) }
                .sorted { $0.split(separator: "/").lexicographicallyPrecedes($1.split(separator: "/")) }
            for relative in files {
                hasher.update(Data(relative.utf8) + Data([0]))
                hasher.update(try Data(contentsOf: url.appendingPathComponent(relative), options: .mappedIfSafe))
            }
        } else {
            hasher.update(try Data(contentsOf: url, options: .mappedIfSafe))
        }
        return hasher.hexDigest()
    }
}
