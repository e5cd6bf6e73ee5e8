package vera.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** When Planner.plan has the vision encoder loaded (VisionEncoderLoader), counted by a spy. */
class VisionEncoderTest {
    private var loads = 0
    private var releases = 0
    private var decodesWhileLoaded = 0

    private fun loader(resident: Boolean) = VisionEncoderLoader({
        loads++
        val replay = ReplayPlanner(Fixtures.json("trace_golden.json")) // its image rows, what the traces' prompts expect
        object : VisionEncoder {
            override fun encode(pixels: FloatArray) = replay.encodeImage(pixels)

            override fun close() {
                releases++
            }
        }
    }, resident)

    /** Plans [photos] photos with the request of [trace], its calls replayed once per photo. */
    private fun plan(trace: String, vision: VisionEncoderLoader, photos: Int) {
        val recorded = Fixtures.json("$trace.json")
        repeat(photos) {
            val replay = ReplayPlanner(recorded)
            val backend = object : PlannerBackend by replay {
                override fun encodeImage(pixels: FloatArray) = vision.encode(pixels)

                override fun decode(embeds: Rows): Decoded {
                    if (loads > releases) decodesWhileLoaded++
                    return replay.decode(embeds)
                }
            }
            Planner(Fixtures.manifest, backend, ReplayTokenizer(recorded)).plan(
                Fixtures.request(recorded.obj("request")), SelfCheck.goldenPixels(Fixtures.manifest.imageSize),
                SamplingOptions(maxNewTokens = recorded.int("max_new_tokens"))
            )
            replay.finished()
        }
    }

    @Test fun byDefaultEachPhotoLoadsAndReleasesItBeforeDecoding() {
        plan("trace_golden", loader(resident = false), photos = 3)
        assertEquals(3, loads)
        assertEquals(3, releases)
        assertEquals(0, decodesWhileLoaded)
    }

    @Test fun residentLoadsItOnceForSeveralPhotosUntilClosed() {
        val vision = loader(resident = true)
        plan("trace_golden", vision, photos = 3)
        assertEquals(1, loads)
        assertEquals(0, releases)
        assertTrue(decodesWhileLoaded > 0) // the spy sees a loaded encoder when there is one
        vision.close()
        assertEquals(1, releases)
    }

    @Test fun paramModeNeverLoadsIt() {
        for (resident in listOf(false, true)) plan("trace_param", loader(resident), photos = 2)
        assertEquals(0, loads)
    }
}
