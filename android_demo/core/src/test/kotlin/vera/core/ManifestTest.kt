package vera.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File

class ManifestTest {
    @get:Rule val temp = TemporaryFolder()

    @Test fun readsTheFieldsTheAppsUse() {
        val manifest = Fixtures.manifest
        assertEquals(setOf(151645), manifest.tokenizer.eosIds)
        assertEquals(listOf(151649, 151650, 151651), manifest.tokenizer.retouchTokenIds)
        assertEquals(listOf("<retouch_light>", "<retouch_color&temp>", "<retouch_colormixer>"), manifest.prompts.retouchTokens)
        assertEquals(listOf("Light Adjustment", "Color and Temperature Adjustment", "Specific Color Adjustment"),
            manifest.prompts.sliderGroups.keys.toList())
        assertEquals(38, manifest.prompts.sliderNames.size)
        assertEquals(65536, manifest.renderer.tile)
        assertEquals(33, manifest.renderer.lutSize)
        val planner = manifest.artifact("planner", "executorch")
        assertEquals("planner.pte", planner.path)
        assertEquals("int64", planner.methods.getValue("text_decoder_with_hidden").inputs[1].dtype)
        assertTrue(manifest.golden("planner", "executorch") != null)
        assertTrue(manifest.golden("renderer") != null)
    }

    @Test fun plannerViewSizeMatchesPython() {
        val view = Fixtures.manifest.plannerView
        for (case in Fixtures.json("views.json").list("cases")) {
            val (width, height) = case.obj("case").list("size").ints()
            val (w, h) = case.obj("case").list("resized").ints()
            assertEquals("${width}x$height", w to h, view.resizedSize(width, height))
        }
    }

    @Test fun sliderOrderComesFromSliderGroupOrderNotFromTheObject() {
        val prompts = Fixtures.manifest.json.obj("prompts")
        val reversed = LinkedHashMap(prompts.obj("slider_groups").entries.reversed().associate { it.key to it.value })
        val spec = PromptSpec(prompts + ("slider_groups" to reversed))
        assertEquals(prompts.list("slider_group_order").strings(), spec.sliderGroups.keys.toList())
        val request = Request(spec, "param", params = mapOf("Exposure2012" to 30.0))
        assertEquals(Request(Fixtures.manifest.prompts, "param", params = mapOf("Exposure2012" to 30.0)).fullPrompt(),
            request.fullPrompt())
        assertEquals(listOf(1f, 0f, 0f), request.mask().toList())
        try {
            PromptSpec(prompts + ("slider_group_order" to prompts.list("slider_group_order").drop(1)))
            fail("accepted a slider_group_order without every group")
        } catch (expected: IllegalArgumentException) {
        }
    }

    @Test fun folderHashesFollowPythonPathOrder() {
        // The stand-in .mlpackage folders hold "x.bin" and "x/y.bin"; their sha256 is Python's.
        val bundle = Fixtures.bundle
        val folder = bundle.manifest.artifacts.first { it.path.endsWith(".mlpackage") }
        assertEquals(folder.sha256, Bundle.sha256Of(bundle.file(folder)))
    }

    @Test fun refusesAlteredMissingOrNewerBundles() {
        expectError("does not match its sha256") { copy().also { File(it, "renderer.pte").appendText("x") } }
        expectError("named in the manifest but missing") { copy().also { File(it, "planner.pte").delete() } }
        expectError("schema_version 2.0 is not supported") {
            copy().also { val f = File(it, "manifest.json"); f.writeText(f.readText().replace("\"schema_version\": 1", "\"schema_version\": 2")) }
        }
        expectError("not a bundle") { temp.newFolder() }
    }

    private fun copy(): File = temp.newFolder().also { Fixtures.file("bundle").copyRecursively(it, overwrite = true) }

    private fun expectError(fragment: String, make: () -> File) {
        try {
            Bundle.load(make())
            fail("loaded a bundle that should fail with '$fragment'")
        } catch (e: BundleError) {
            assertTrue(e.message!!, fragment in e.message!!)
        }
    }
}
