"""Judge-data rows shared by the scalar-model and the trainer tests."""

from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

FEATURES = Features(
    {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
)
SOUND = "<think>There are 2 red circles and 1 blue square, so 2 + 1 = 3 shapes.</think><answer>3</answer>"
FLAWED = "<think>" + "Shapes are nice, I like shapes. " * 30 + "</think><answer>7</answer>"  # redundant filler


def thinking_rows(num_questions=6):
    """Two responses per question (sound 0.9, flawed 0.1); questions alternate between image and text-only."""
    rows = []
    for q in range(num_questions):
        image = Image.new("RGB", (56, 56), (40 * q % 256, 100, 200)) if q % 3 != 2 else None
        for response, score in ((SOUND, 0.9), (FLAWED, 0.1)):
            rows.append(
                {
                    "question": f"How many shapes are in scene {q}?",
                    "image": image,
                    "response": response,
                    "score": score,
                }
            )
    return Dataset.from_list(rows, features=FEATURES)
