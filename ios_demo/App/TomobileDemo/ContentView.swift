// The screen: prompt, seed, steps, LPL off / N / auto, TDTM steps, spatial ToMe on/off, the clip playing
// (scaled up, looping) and the denoiser calls and timings. The same screen as web_demo/ and android_demo/.
import SwiftUI
import TomobileCore

struct ContentView: View {
    @ObservedObject var model: DemoModel

    var body: some View {
        Form {
            Section("Prompt") {
                TextField("Prompt", text: $model.settings.prompt, axis: .vertical)
                HStack {
                    NumberField(label: "Seed", text: $model.settings.seed)
                    NumberField(label: "Steps", text: $model.settings.steps)
                    NumberField(label: "TDTM steps", text: $model.settings.tdtmSteps)
                }
            }
            Section("Speed-ups") {
                LeapPicker(lpl: $model.settings.lpl)
                Toggle("Spatial ToMe (denoiser_tome variants)", isOn: $model.settings.spatial)
                Toggle("Release each denoiser after use (less memory)", isOn: $model.reduceMemory)
            }
            Section {
                Button(model.running ? "Generating..." : "Generate", action: model.generate).disabled(model.running)
                Text(model.status).font(.footnote)
            }
            if !model.frames.isEmpty {
                Section("Clip") { ClipPlayer(frames: model.frames) }
            }
            if let stats = model.stats {
                Section("Denoiser") { StatsView(stats: stats) }
            }
        }
    }
}

private struct NumberField: View {
    let label: String
    @Binding var text: String

    var body: some View {
        VStack(alignment: .leading) {
            Text(label).font(.caption)
            TextField(label, text: $text).keyboardType(.numberPad)
        }
    }
}

/// LPL: off, a fixed leap after N steps, or auto (On-device Sora's rule).
private struct LeapPicker: View {
    @Binding var lpl: String

    private var mode: String {
        switch lpl.trimmingCharacters(in: .whitespaces).lowercased() {
        case "off": return "off"
        case "auto": return "auto"
        default: return "n"
        }
    }

    var body: some View {
        VStack(alignment: .leading) {
            Picker("LPL", selection: Binding(get: { mode }, set: { lpl = $0 == "n" ? "15" : $0 })) {
                Text("off").tag("off")
                Text("N").tag("n")
                Text("auto").tag("auto")
            }
            .pickerStyle(.segmented)
            if mode == "n" {
                NumberField(label: "Leap after step", text: $lpl)
            }
        }
    }
}

/// The clip, scaled up without smoothing, looping at 8 frames per second.
private struct ClipPlayer: View {
    let frames: [CGImage]

    var body: some View {
        TimelineView(.periodic(from: .now, by: 0.125)) { context in
            let index = Int(context.date.timeIntervalSinceReferenceDate * 8) % frames.count
            Image(decorative: frames[index], scale: 1)
                .resizable()
                .interpolation(.none)
                .frame(width: 256, height: 256)
                .accessibilityLabel("generated clip, frame \(index + 1) of \(frames.count)")
        }
    }
}

private struct StatsView: View {
    let stats: GenerationStats

    var body: some View {
        let perCall = stats.callMillis
        VStack(alignment: .leading, spacing: 4) {
            Text("Calls: \(stats.calls) (\(stats.mergedCalls) TDTM-merged)" + (stats.leapAt.map { ", leap at step \($0)" } ?? ""))
            if let low = perCall.min(), let high = perCall.max() {
                Text(String(format: "ms per call: mean %.1f, min %.1f, max %.1f", perCall.reduce(0, +) / Double(perCall.count), low, high))
            }
            Text(String(format: "Sampling %.0f ms, text encoder %.0f ms", stats.sampleMillis, stats.encodeMillis))
            Text("Variants: " + Array(Set(stats.variants)).sorted().joined(separator: ", "))
        }
        .font(.callout)
    }
}
