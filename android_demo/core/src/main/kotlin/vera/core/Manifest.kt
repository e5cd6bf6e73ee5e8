package vera.core

import java.io.File
import java.security.MessageDigest

/**
 * The bundle's manifest.json: the one contract between the exporter and every runtime
 * (vera_mobile/bundle.py reads the same file). The app takes every constant from here.
 */
class Manifest(val json: Map<String, Any?>) {
    val schemaVersion = json.int("schema_version")
    val model = json.obj("model")
    val hiddenSize = model.int("hidden_size")
    val imageSize = model.int("image_size")
    val tokenizer = TokenizerInfo(json.obj("tokenizer"))
    val prompts = PromptSpec(json.obj("prompts"))
    val preprocessing = json.obj("preprocessing")
    val plannerView = PlannerViewInfo(preprocessing.obj("planner"))
    val renderer = RendererInfo(json.obj("renderer"))
    val artifacts = json.list("artifacts").map { Artifact(it.obj("artifact")) }
    val golden = json.list("golden").map { it.obj("golden record") }

    /** The artifacts of one component ("planner", "renderer", ...) on one target ("executorch", ...). */
    fun artifacts(component: String, target: String) =
        artifacts.filter { it.component == component && it.target == target }

    fun artifact(component: String, target: String): Artifact =
        artifacts(component, target).firstOrNull() ?: throw BundleError(
            "no $component artifact for $target (bundle has: " +
                artifacts.map { "${it.component}/${it.target}" }.toSortedSet().joinToString(", ") + ")"
        )

    fun has(component: String, target: String) = artifacts(component, target).isNotEmpty()

    /** The golden record of one component (and target, for the planner), if the bundle has one. */
    fun golden(component: String, target: String? = null) = golden.firstOrNull {
        it["component"] == component && (target == null || it["target"] == target)
    }

    companion object {
        const val SCHEMA_VERSION = 1
        const val FILE_NAME = "manifest.json"
        private val REQUIRED = listOf(
            "schema_version", "source", "model", "tokenizer", "prompts", "preprocessing", "renderer", "artifacts"
        )

        fun parse(text: String): Manifest {
            val json = try {
                Json.parse(text).obj("manifest")
            } catch (e: IllegalArgumentException) {
                throw BundleError("manifest.json is not valid: ${e.message}")
            }
            val version = json["schema_version"]
            if (version != SCHEMA_VERSION.toDouble()) {
                throw BundleError(
                    "manifest schema_version $version is not supported (this app reads version $SCHEMA_VERSION); " +
                        "re-export the bundle or update the app"
                )
            }
            val missing = REQUIRED.filter { it !in json }
            if (missing.isNotEmpty()) throw BundleError("manifest is missing section(s) ${missing.joinToString(", ")}")
            return try {
                Manifest(json)
            } catch (e: IllegalArgumentException) {
                throw BundleError("manifest.json: ${e.message}")
            }
        }
    }
}

class TokenizerInfo(json: Map<String, Any?>) {
    val file = json.str("file")
    val sha256 = json.str("sha256")
    val eosIds = json.list("eos_ids").ints().toSet()
    val retouchTokenIds = json.list("retouch_token_ids").ints().toList()
}

/** `preprocessing.planner`: the size of the planner view's first resize, as vera_mobile/views.py computes it. */
class PlannerViewInfo(json: Map<String, Any?>) {
    val shortSide = json.int("short_side")
    val maxLongSide = json.int("max_long_side")

    /** (width, height) after the first resize: short side to [shortSide], long side truncated; past [maxLongSide] both shrink. */
    fun resizedSize(width: Int, height: Int): Pair<Int, Int> {
        val (w, h) = if (width <= height) {
            shortSide to (height.toLong() * shortSide / width).toInt()
        } else {
            (width.toLong() * shortSide / height).toInt() to shortSide
        }
        val long = maxOf(w, h)
        if (long <= maxLongSide) return w to h
        val scale = maxLongSide.toDouble() / long
        return maxOf(1, Math.rint(w * scale).toInt()) to maxOf(1, Math.rint(h * scale).toInt()) // half-even, as Python's round
    }
}

class RendererInfo(json: Map<String, Any?>) {
    val tile = json.int("tile")
    val lutSize = json.int("lut_size")
    val biasSize = json.int("bias_size")
    val latentDim = json.int("latent_dim")
}

class Tensor(json: Map<String, Any?>) {
    val name = json.str("name")
    val shape: List<Any?> = json.list("shape") // numbers, or names of flexible sizes ("tokens")
    val dtype = json.str("dtype")
}

class Method(json: Map<String, Any?>) {
    val inputs = json.list("inputs").map { Tensor(it.obj("input")) }
    val outputs = json.list("outputs").map { Tensor(it.obj("output")) }
}

class Artifact(json: Map<String, Any?>) {
    val component = json.str("component")
    val target = json.str("target")
    val path = json.str("path")
    val sha256 = json.str("sha256")
    val precision = json["precision"] as String?
    val recipe = json["recipe"] as String?
    val methods: Map<String, Method> = json.obj("methods").mapValues { Method(it.value.obj(it.key)) }
}

class BundleError(message: String) : Exception(message)

/** A bundle folder: its manifest plus the files it names, each checked against its sha256. */
class Bundle private constructor(val directory: File, val manifest: Manifest) {
    fun file(relative: String) = File(directory, relative)

    fun file(artifact: Artifact) = file(artifact.path)

    companion object {
        /** Read and check a bundle; every problem is a [BundleError] naming the file. */
        fun load(directory: File, verifyHashes: Boolean = true): Bundle {
            val manifestFile = File(directory, Manifest.FILE_NAME)
            if (!manifestFile.isFile) throw BundleError("$directory: not a bundle (no ${Manifest.FILE_NAME})")
            val manifest = Manifest.parse(manifestFile.readText(Charsets.UTF_8))
            val files = manifest.artifacts.map { it.path to it.sha256 } +
                (manifest.tokenizer.file to manifest.tokenizer.sha256)
            for ((relative, expected) in files) {
                val file = File(directory, relative)
                if (!file.exists()) throw BundleError("$directory: $relative is named in the manifest but missing")
                if (verifyHashes && sha256Of(file) != expected) {
                    throw BundleError("$directory: $relative does not match its sha256 in the manifest (corrupt or altered)")
                }
            }
            return Bundle(directory, manifest)
        }

        /**
         * sha256 of a file; of a folder (a Core ML .mlpackage), over each file's relative path, a NUL
         * byte and its bytes, in path-parts order: the rule of vera_mobile/bundle.py's sha256_of.
         */
        fun sha256Of(path: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            val buffer = ByteArray(1 shl 20)
            val files = if (path.isDirectory) {
                path.walkTopDown().filter { it.isFile }
                    .map { it.relativeTo(path).invariantSeparatorsPath }
                    .sortedWith(Comparator { a, b -> compareParts(a.split('/'), b.split('/')) }).toList()
            } else {
                listOf("")
            }
            for (relative in files) {
                if (path.isDirectory) {
                    digest.update(relative.toByteArray(Charsets.UTF_8))
                    digest.update(0)
                }
                val file = if (path.isDirectory) File(path, relative) else path
                file.inputStream().use { stream ->
                    while (true) {
                        val read = stream.read(buffer)
                        if (read < 0) break
                        digest.update(buffer, 0, read)
                    }
                }
            }
            return digest.digest().joinToString("") { String.format("%02x", it) }
        }

        /** Python's Path ordering: compare part by part ("x/y.bin" < "x.bin" because "x" < "x.bin"). */
        private fun compareParts(a: List<String>, b: List<String>): Int {
            for (i in 0 until minOf(a.size, b.size)) {
                val order = a[i].compareTo(b[i])
                if (order != 0) return order
            }
            return a.size - b.size
        }
    }
}
