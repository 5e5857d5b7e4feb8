// :core: the platform-free half of the app (generator, tokenizer, sampler, manifest, pipeline).
// Plain Kotlin/JVM: no Android imports, so its tests run on any JVM (`make test-android` runs them
// without Gradle; `./gradlew :core:test` runs the same tests where Maven is reachable, not here).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17) // the same target test_core.sh compiles for
    }
}

dependencies {
    testImplementation(libs.junit.jupiter)
    testRuntimeOnly(libs.junit.platform.launcher)
}

tasks.test {
    useJUnitPlatform()
    // Folders the Python side writes (see README.md): -Ptomobile.fixtures=DIR -Ptomobile.export=DIR
    for (name in listOf("tomobile.fixtures", "tomobile.export")) {
        project.findProperty(name)?.let { systemProperty(name, it.toString()) }
    }
}
