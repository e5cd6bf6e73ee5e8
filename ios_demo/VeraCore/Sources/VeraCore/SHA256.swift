import Foundation
#if canImport(CryptoKit)
import CryptoKit
#endif

/// The bundle's file hashes: CryptoKit where the platform has it, PortableSHA256 elsewhere (Linux), so
/// the core builds and checks bundles on every platform Swift runs on.
struct FileHasher {
    #if canImport(CryptoKit)
    private var inner = CryptoKit.SHA256()
    mutating func update(_ data: Data) { inner.update(data: data) }
    func hexDigest() -> String { hex(Array(inner.finalize())) }
    #else
    private var inner = PortableSHA256()
    mutating func update(_ data: Data) { inner.update(data) }
    func hexDigest() -> String { hex(inner.finalize()) }
    #endif
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined()
}

/// SHA-256 as FIPS 180-4 defines it, in plain Swift for platforms without CryptoKit; checked against
/// the standard's test vectors in VeraCoreTests.
public struct PortableSHA256 {
    // First 32 bits of the fractional parts of the cube roots of the first 64 primes.
    private static let roundConstants: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    // First 32 bits of the fractional parts of the square roots of the first 8 primes.
    private var state: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var pending: [UInt8] = [] // the bytes of an unfinished 64-byte block
    private var length: UInt64 = 0 // bytes hashed so far

    public init() {}

    public mutating func update(_ data: Data) {
        length &+= UInt64(data.count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var bytes = raw[...]
            if !pending.isEmpty {
                let take = min(64 - pending.count, bytes.count)
                pending += bytes.prefix(take)
                bytes = bytes.dropFirst(take)
                if pending.count == 64 {
                    compress(pending)
                    pending.removeAll(keepingCapacity: true)
                }
            }
            while bytes.count >= 64 {
                compress(bytes.prefix(64))
                bytes = bytes.dropFirst(64)
            }
            pending += bytes
        }
    }

    /// The 32-byte digest of everything given to update so far.
    public func finalize() -> [UInt8] {
        var last = self
        let bits = length &* 8
        // 0x80, zeros up to 56 bytes into a block, then the message length in bits, big-endian.
        var tail: [UInt8] = [0x80] + [UInt8](repeating: 0, count: (55 - Int(length % 64) + 64) % 64)
        tail += (0 ..< 8).map { UInt8(truncatingIfNeeded: bits >> (56 - 8 * UInt64($0))) }
        last.update(Data(tail))
        return last.state.flatMap { word in (0 ..< 4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32($0))) } }
    }

    private mutating func compress<Block: Collection>(_ block: Block) where Block.Element == UInt8 {
        var w = [UInt32](repeating: 0, count: 64)
        for (i, byte) in block.enumerated() { w[i / 4] |= UInt32(byte) << (24 - 8 * UInt32(i % 4)) }
        for t in 16 ..< 64 {
            let s0 = rotateRight(w[t - 15], 7) ^ rotateRight(w[t - 15], 18) ^ (w[t - 15] >> 3)
            let s1 = rotateRight(w[t - 2], 17) ^ rotateRight(w[t - 2], 19) ^ (w[t - 2] >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for t in 0 ..< 64 {
            let s1 = rotateRight(e, 6) ^ rotateRight(e, 11) ^ rotateRight(e, 25)
            let choice = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choice &+ PortableSHA256.roundConstants[t] &+ w[t]
            let s0 = rotateRight(a, 2) ^ rotateRight(a, 13) ^ rotateRight(a, 22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ s0 &+ majority)
        }
        for (i, value) in [a, b, c, d, e, f, g, h].enumerated() { state[i] &+= value }
    }

    private func rotateRight(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
