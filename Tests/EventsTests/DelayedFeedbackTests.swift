import EventData
import Events
import Testing

@Suite("Delayed feedback")
struct DelayedFeedbackTests {
    static let hour: Int64 = 3_600_000

    /// Pin 7 shown at 0 h (session 1), shown again at 1 h (session 2), saved at 3 h (session 3,
    /// after a training cut at 2 h) and closed up at 30 h; pin 8 shown at 0.5 h and saved in
    /// the same session at 0.6 h.
    static var user: UserEvents {
        var u = UserEvents(user: 1)
        let rows: [(pin: Int64, type: EventType, hours: Double, session: Int64)] = [
            (7, .impression, 0, 1), (8, .impression, 0.5, 1), (8, .save, 0.6, 1), (7, .impression, 1, 2),
            (7, .save, 3, 3), (7, .closeup, 30, 4),
        ]
        for r in rows {
            u.pins.append(r.pin)
            u.types.append(r.type.rawValue)
            u.times.append(Int64(r.hours * Double(hour)))
            u.sessions.append(r.session)
            u.positions.append(0)
            u.surfaces.append(0)
        }
        return u
    }

    @Test("A save after the cut is credited to the impression that caused it within the join window, and only then")
    func lateSaveJoinsWithinTheWindow() {
        let u = Self.user
        let save = UInt8(1) << EventType.save.rawValue, closeup = UInt8(1) << EventType.closeup.rawValue
        // Without a window: the same session only, so the late save of pin 7 labels nothing.
        #expect(u.impressionLabels() == [0, save, 0, 0, 0, 0])
        // A 4-hour window: the save 2 h after the second impression of pin 7 (the latest before
        // it) labels that impression, not the first one; the closeup 29 h later does not.
        #expect(u.impressionLabels(joinWindow: 4 * Self.hour) == [0, save, 0, save, 0, 0])
        // A 1-hour window: the save came too late.
        #expect(u.impressionLabels(joinWindow: Self.hour) == [0, save, 0, 0, 0, 0])
        // A 30-hour window also takes the closeup.
        #expect(u.impressionLabels(joinWindow: 30 * Self.hour) == [0, save, 0, save | closeup, 0, 0])
    }
}
