// tomobile's Android demo, laid out like ExecuTorch's Android demos (meta-pytorch/executorch-examples):
// versions in gradle/libs.versions.toml, an Android app module `:app` (Jetpack Compose), plus a plain
// Kotlin/JVM module `:core` with everything that is not Android (tested on any JVM, see README.md).

pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "tomobile-android-demo"

include(":core")
include(":app")
