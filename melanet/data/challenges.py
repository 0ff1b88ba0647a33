"""The official layouts of the later ISIC challenges (2017 Part 3, 2018 Task 3, 2019, 2020), as the files unpack.

One home for their file names, CSV headers and class conventions; :mod:`melanet.data.challenge_reader`
reads a folder with them, :mod:`melanet.data.download` fetches them. Facts, as the public files hold them:

- Hosting: ``https://isic-archive.s3.amazonaws.com/challenges/<year>/<file>`` (the newer bucket), formerly
  ``https://isic-challenge-data.s3.amazonaws.com/<year>/<file>``; the same file names on both.
- **ISIC 2017 Part 3** (lesion classification): ``ISIC-2017_{Training,Validation,Test_v2}_Data.zip`` unpack
  to folders of the same name holding ``ISIC_<id>.jpg``, ``ISIC_<id>_superpixels.png`` (superpixel maps
  for Part 2: decoys, not images to classify) and ``ISIC-2017_<split>_Data_metadata.csv``
  (``image_id,age_approximate,sex``). Labels: ``ISIC-2017_{Training,Validation,Test_v2}_Part3_GroundTruth.csv``,
  header ``image_id,melanoma,seborrheic_keratosis``, values ``0.0``/``1.0``, CRLF line ends; a row with
  both 0 is a nevus. 2,000 / 150 / 600 images, melanoma 374 / 30 / 117. Melanoma is the malignant class;
  seborrheic keratosis and nevus are benign.
- **ISIC 2018 Task 3**: ``ISIC2018_Task3_{Training,Validation,Test}_Input.zip`` (10,015 / 193 / 1,512 JPEGs,
  plus ``ATTRIBUTION.txt`` and ``LICENSE.txt``) and ``ISIC2018_Task3_{...}_GroundTruth.zip`` holding
  ``ISIC2018_Task3_{...}_GroundTruth.csv``, header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, one-hot
  ``0.0``/``1.0``, CRLF or LF. Melanoma = ``MEL``; also calling basal cell carcinoma (``BCC``) and actinic
  keratosis / intraepithelial carcinoma (``AKIEC``) malignant is a convention the user may choose
  (``data.malignant_classes=MEL,BCC,AKIEC``).
- **ISIC 2019**: ``ISIC_2019_Training_Input.zip`` -> ``ISIC_2019_Training_Input/`` (25,331 JPEGs; some ids end
  in ``_downsampled``), ``ISIC_2019_Training_GroundTruth.csv`` header ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK``
  (one-hot), ``ISIC_2019_Training_Metadata.csv`` header ``image,age_approx,anatom_site_general,lesion_id,sex``
  (an empty field = missing). Only the training images are labelled. Grouped by ``lesion_id``.
- **ISIC 2020**: ``ISIC_2020_Training_JPEG.zip`` -> ``train/`` (33,126 JPEGs, 584 melanoma, 2,056 patients),
  ``ISIC_2020_Training_GroundTruth_v2.csv`` header ``image_name,patient_id,lesion_id,sex,age_approx,
  anatom_site_general_challenge,diagnosis,benign_malignant,target`` (v1, ``ISIC_2020_Training_GroundTruth.csv``,
  lacks ``lesion_id``), ``ISIC_2020_Training_Duplicates.csv`` (``image_name_1,image_name_2``, 425 pairs of the
  same image under two names). No test labels were released. ``benign_malignant`` must agree with ``target``
  (``benign`` = 0, ``malignant`` = 1). Grouped by ``patient_id``; a duplicate pair is one group.
"""

from __future__ import annotations

import dataclasses

NEW_BUCKET_URL = "https://isic-archive.s3.amazonaws.com/challenges/{year}/"
OLD_BUCKET_URL = "https://isic-challenge-data.s3.amazonaws.com/{year}/"
IMAGE_SUFFIXES = (".jpg", ".jpeg")  # every challenge image is a JPEG; PNGs in the folders are superpixel decoys


@dataclasses.dataclass(frozen=True)
class GroundTruthFormat:
    """How a ground-truth CSV is read.

    ``class_columns`` hold 0/1 (``0.0``/``1.0``) values, at most one 1 per row; a row with no 1 belongs to
    ``implied_class`` (None: exactly one 1 is required). ``other_columns`` may appear and carry no label;
    ``optional_columns`` of either kind may be absent. Any other column is an error.
    """

    id_column: str
    class_columns: tuple[str, ...]
    implied_class: str | None
    malignant_default: tuple[str, ...]
    other_columns: tuple[str, ...] = ()
    optional_columns: tuple[str, ...] = ()
    label_note: str = ""  # how the default labels read, where the column names do not say it
    # a second spelling of a 0/1 class column that must agree with it: (class column, column, word for 0, word for 1)
    agreement: tuple[tuple[str, str, str, str], ...] = ()

    @property
    def known_columns(self) -> tuple[str, ...]:
        return (self.id_column, *self.class_columns, *self.other_columns)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Every class a row can have (the implied one included)."""
        return (*self.class_columns, *((self.implied_class,) if self.implied_class else ()))


@dataclasses.dataclass(frozen=True)
class SplitFiles:
    """Where one labelled split lives: the first existing candidate of each tuple is used."""

    image_folders: tuple[str, ...]
    ground_truth: tuple[str, ...]  # CSV paths relative to the root (2018: inside the unzipped folder)


@dataclasses.dataclass(frozen=True)
class DownloadPart:
    """Files of one ``--parts`` choice: ``(file name, folder its zip unpacks to or None for a CSV)``."""

    files: tuple[tuple[str, str | None], ...]


@dataclasses.dataclass(frozen=True)
class ChallengeLayout:
    """One challenge's layout: its splits, label format, groups and downloadable parts."""

    name: str  # the layout name melanet reports, e.g. "isic2018"
    title: str
    year: int
    splits: dict[str, SplitFiles]  # "train" | "validation" | "test" -> files
    ground_truth: GroundTruthFormat
    group_columns: tuple[str, ...] = ()  # first non-empty one groups a row (patient before lesion)
    metadata: str | None = None  # a CSV beside the ground truth holding the group columns (2019)
    metadata_columns: tuple[str, ...] = ()
    duplicates: str | None = None  # a CSV of image-name pairs that are the same image (2020)
    parts: dict[str, DownloadPart] = dataclasses.field(default_factory=dict)

    def markers(self) -> tuple[str, ...]:
        """Names whose presence in a folder identifies this layout."""
        names: list[str] = []
        for files in self.splits.values():
            names += [folder for folder in files.image_folders if folder != "train"]
            names += [path.split("/")[0] for path in files.ground_truth]
        return tuple(dict.fromkeys(names))


_ISIC2017_SPLITS = {"train": "Training", "validation": "Validation", "test": "Test_v2"}
ISIC2017 = ChallengeLayout(
    name="isic2017", title="ISIC 2017 Part 3", year=2017,
    splits={split: SplitFiles((f"ISIC-2017_{word}_Data",), (f"ISIC-2017_{word}_Part3_GroundTruth.csv",))
            for split, word in _ISIC2017_SPLITS.items()},
    ground_truth=GroundTruthFormat("image_id", ("melanoma", "seborrheic_keratosis"), implied_class="nevus",
                                   malignant_default=("melanoma",)),
    parts={part: DownloadPart(((f"ISIC-2017_{word}_Part3_GroundTruth.csv", None),
                               (f"ISIC-2017_{word}_Data.zip", f"ISIC-2017_{word}_Data")))
           for part, word in (("training", "Training"), ("validation", "Validation"), ("test", "Test_v2"))},
)

_ISIC2018_SPLITS = {"train": "Training", "validation": "Validation", "test": "Test"}
ISIC2018 = ChallengeLayout(
    name="isic2018", title="ISIC 2018 Task 3", year=2018,
    splits={split: SplitFiles((f"ISIC2018_Task3_{word}_Input",),
                              (f"ISIC2018_Task3_{word}_GroundTruth/ISIC2018_Task3_{word}_GroundTruth.csv",
                               f"ISIC2018_Task3_{word}_GroundTruth.csv"))
            for split, word in _ISIC2018_SPLITS.items()},
    ground_truth=GroundTruthFormat("image", ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"), implied_class=None,
                                   malignant_default=("MEL",)),
    parts={part: DownloadPart(((f"ISIC2018_Task3_{word}_GroundTruth.zip", f"ISIC2018_Task3_{word}_GroundTruth"),
                               (f"ISIC2018_Task3_{word}_Input.zip", f"ISIC2018_Task3_{word}_Input")))
           for part, word in (("training", "Training"), ("validation", "Validation"), ("test", "Test"))},
)

ISIC2019 = ChallengeLayout(
    name="isic2019", title="ISIC 2019", year=2019,
    splits={"train": SplitFiles(("ISIC_2019_Training_Input",), ("ISIC_2019_Training_GroundTruth.csv",))},
    ground_truth=GroundTruthFormat("image", ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"),
                                   implied_class=None, malignant_default=("MEL",)),
    group_columns=("lesion_id",),
    metadata="ISIC_2019_Training_Metadata.csv",
    metadata_columns=("image", "age_approx", "anatom_site_general", "lesion_id", "sex"),
    parts={"training": DownloadPart((("ISIC_2019_Training_GroundTruth.csv", None),
                                     ("ISIC_2019_Training_Metadata.csv", None),
                                     ("ISIC_2019_Training_Input.zip", "ISIC_2019_Training_Input")))},
)

ISIC2020 = ChallengeLayout(
    name="isic2020", title="ISIC 2020", year=2020,
    splits={"train": SplitFiles(("train", "ISIC_2020_Training_JPEG"),
                                ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv"))},
    ground_truth=GroundTruthFormat(
        "image_name", ("target",), implied_class="benign", malignant_default=("target",),
        other_columns=("patient_id", "lesion_id", "sex", "age_approx", "anatom_site_general_challenge",
                       "diagnosis", "benign_malignant"),
        optional_columns=("lesion_id",),
        label_note="malignant = target 1 (melanoma; benign_malignant 'malignant'); benign = target 0",
        agreement=(("target", "benign_malignant", "benign", "malignant"),)),
    group_columns=("patient_id", "lesion_id"),
    duplicates="ISIC_2020_Training_Duplicates.csv",
    parts={"training": DownloadPart((("ISIC_2020_Training_GroundTruth_v2.csv", None),
                                     ("ISIC_2020_Training_Duplicates.csv", None),
                                     ("ISIC_2020_Training_JPEG.zip", "train")))},
)

LAYOUTS: dict[str, ChallengeLayout] = {layout.name: layout for layout in (ISIC2017, ISIC2018, ISIC2019, ISIC2020)}


def malignant_columns(layout: ChallengeLayout, choice: str) -> tuple[str, ...]:
    """The class columns counted malignant: ``choice`` ('MEL,BCC,AKIEC'; '' = the layout's melanoma column).

    Raises ValueError naming the unknown class and the layout's classes.
    """
    if not choice.strip():
        return layout.ground_truth.malignant_default
    names = tuple(name.strip() for name in choice.split(",") if name.strip())
    unknown = [name for name in names if name not in layout.ground_truth.class_columns]
    if unknown:
        raise ValueError(
            f"data.malignant_classes: {', '.join(unknown)} is not a class of the {layout.title} ground truth "
            f"(its classes: {', '.join(layout.ground_truth.class_columns)})")
    return names
