"""Inside Slicer: the engine and the bundle shipped with the TumorSeg module are complete and start."""

import subprocess
import unittest


class TumorSegEngineTest(unittest.TestCase):
    def setUp(self):
        import TumorSeg

        self.logic = TumorSeg.TumorSegLogic()
        self.engineDir = self.logic.engineDirectory()

    def test_EngineFilesShipped(self):
        for relativePath in ("monai_core/__init__.py", "monai_core/__main__.py", "bundle/configs/inference.json", "bundle/configs/metadata.json"):
            self.assertTrue((self.engineDir / relativePath).is_file(), f"{relativePath} is missing from {self.engineDir}")

    def test_DetectCommandStarts(self):
        if self.logic.slicerVersionProblem() or self.logic.missingRequirements():
            self.skipTest("the engine's Python packages are not installed in this Slicer")
        result = subprocess.run(
            [self.logic.pythonExecutable(), "-m", "monai_core", "detect", "--help"],
            cwd=str(self.engineDir), capture_output=True, text=True, timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--progress", result.stdout)


def runTest():
    suite = unittest.TestLoader().loadTestsFromTestCase(TumorSegEngineTest)
    return unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
