// The SwiftUI app: add these files to an iOS app target that depends on the TomobileCore and
// TomobileCoreML libraries of this package (ios_demo/README.md, "Run it on an iPhone").
import SwiftUI

@main
struct TomobileDemoApp: App {
    @StateObject private var model = DemoModel()

    var body: some Scene {
        WindowGroup {
            ContentView(model: model)
        }
    }
}
