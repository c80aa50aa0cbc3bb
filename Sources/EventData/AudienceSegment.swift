/// The key of a group of users for cold-start lists: everyone, a country, or a country and a
/// device. Written by the batch jobs (`cold_start` artifact) and read by the serving shard.
public enum AudienceSegment {
    /// Every user.
    public static let everyone: Int64 = -1

    /// The users of `country` (packed code, `CountryCode`), or of `country` on `device`.
    public static func key(country: Int32, device: UInt8? = nil) -> Int64 {
        guard let device else { return 1 << 40 | Int64(UInt32(bitPattern: country)) }
        return 2 << 40 | Int64(UInt32(bitPattern: country)) << 8 | Int64(device)
    }
}

extension AudienceSegment {
    /// The cold-start feed of a user of `country` on `device` (nil: unknown): the list of the
    /// (country, device) segment, topped up from the country's, then everyone's; pins in
    /// `exclude` and repeats left out, at most `k`. `list(key)` returns a segment's list.
    public static func feed(
        country: Int32?, device: UInt8?, k: Int, exclude: Set<Int64> = [], list: (Int64) -> [Int64]?
    ) -> [Int64] {
        var keys: [Int64] = []
        if let country {
            if let device { keys.append(key(country: country, device: device)) }
            keys.append(key(country: country))
        }
        keys.append(everyone)
        var out: [Int64] = [], taken = exclude
        for pin in keys.compactMap(list).joined() where out.count < k && taken.insert(pin).inserted { out.append(pin) }
        return out
    }
}
