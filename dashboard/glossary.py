"""One line of plain language for every technical term a dermatologist meets on the dashboard.

Pages pass these to ``help=`` (the (?) tooltip of a widget, metric or column) or show them in a caption
beside a figure: ``glossary.help_for("ECE", "Brier")``. A term used on a page and missing here is a
``KeyError`` in the tests, not a silent gap.
"""

from __future__ import annotations

TERMS: dict[str, str] = {
    "AUC": "Area under the ROC curve: the chance that a random melanoma gets a higher score than a random "
           "benign lesion (0.5 = coin toss, 1.0 = perfect).",
    "sensitivity": "Share of melanomas the model calls malignant (1 - sensitivity = melanomas missed).",
    "specificity": "Share of benign lesions the model calls benign (1 - specificity = needless alarms).",
    "PPV": "Of the lesions called malignant, the share that are melanoma (depends on how common melanoma is).",
    "NPV": "Of the lesions called benign, the share that really are benign.",
    "threshold": "The score above which an image is called malignant; lower it to miss fewer melanomas at "
                 "the cost of more false alarms.",
    "operating threshold": "A threshold chosen on the validation images (never the test images) so that "
                           "sensitivity reaches the target, e.g. 80 %.",
    "confidence interval": "The range the true figure plausibly lies in (95 %); wide with few test images.",
    "GAP": "Global average pooling: the classifier averages each feature map over the whole image before "
           "deciding, which also lets Grad-CAM show where it looked.",
    "VGG-GAP": "The paper's classifier: VGG16, a well-known image network pre-trained on everyday photos, whose "
               "last feature maps are averaged over the image (GAP) before one output gives the chance of melanoma. The "
               "shipped demo uses EfficientNet-Lite0, a smaller network, in its place.",
    "block5c_add": "The last block of EfficientNet-Lite0 whose features the heat map is computed on (an 8 x 8 grid "
                   "for a 256 px image, which sets how coarse the map is). A name inside the network, of interest "
                   "to engineers only.",
    "Hillis ddf": "Hillis's denominator degrees of freedom: how many effective readers-and-cases the reader-study "
                  "F test counts on; few readers give few degrees of freedom and wide intervals.",
    "OR variance components": "Obuchowski-Rockette variance components: how much of the spread of the readers' "
                              "AUCs comes from the readers, from the cases, and from their mixture; they set how "
                              "many readers and cases the next study needs.",
    "threshold of 128 bits": "Duplicate check: each image gets a 128-bit fingerprint of its coarse light-and-dark "
                             "pattern; two images whose fingerprints differ in at most this many bits (e.g. 8 of "
                             "128) count as copies of the same photograph, mirrored copies included.",
    "block5_conv3": "The last convolution layer of VGG16, the network layer whose features Grad-CAM maps "
                    "(its coarse 14x14 grid sets the heat map's detail).",
    "Grad-CAM": "A heat map of the image regions that raised the model's melanoma score; it shows where the "
                "model looked, not why, and is not a lesion segmentation.",
    "focal loss": "A training loss that gives more weight to the images the model still gets wrong, so the "
                  "rarer melanomas are not drowned out by easy benign lesions.",
    "CycleGAN": "A pair of image-to-image networks trained to turn benign-looking lesions into "
                "malignant-looking ones and back, without paired examples; MelaNet adds the artificial melanomas "
                "it makes to the classifier's training images.",
    "synthetic": "An image made by the CycleGAN from a real benign lesion; not a real patient's melanoma.",
    "KID": "Kernel inception distance: how far the synthetic images are from real ones in a network's "
           "features (0 = indistinguishable; compare with the distance between real benign and real malignant).",
    "realism": "The realism probe's P(real melanoma), 0 to 1, per synthetic lesion: how likely a probe that tells "
               "synthetic lesions from real melanomas (never fitted on this one) takes it for real; not whether it "
               "looks malignant.",
    "translation share": "How far synthetic 'malignant' lesions move from their benign sources towards real "
                         "melanomas, by a judge trained on real images only: 0 = scored like their sources, "
                         "1 = like real melanomas.",
    "ECE": "Expected calibration error: the average gap between the predicted chance of melanoma and the "
           "observed share of melanomas (0 = the scores can be read as probabilities).",
    "Brier": "Brier score: the mean squared error of the predicted probability (0 = perfect; a model that "
             "always says 0.5 scores 0.25).",
    "calibration": "Whether a score of 0.3 means melanoma about 30 % of the time; 'calibrated' scores are "
                   "re-mapped on the validation images to make that hold (the AUC stays the same).",
    "DeLong": "DeLong's test: whether two models' AUCs on the same images differ by more than chance.",
    "Holm": "Holm's correction: p-values raised to account for running several tests at once, so a family "
            "of comparisons keeps a 5 % overall chance of a false finding.",
    "McNemar": "McNemar's test: whether two models disagree on the same images more often in one direction "
               "than the other (counts of 'A right, B wrong' against the reverse).",
    "p-value": "The chance of a difference at least this large if the models were really equal; below 0.05 "
               "is conventionally called significant.",
    "bootstrap": "Re-sampling the test images many times to see how much a figure would move on another "
                 "sample of patients.",
    "kappa": "Cohen's kappa: agreement between two readings beyond what chance alone gives (0 = chance, 1 = "
             "perfect).",
    "rating AUC": "A reader's AUC computed from their confidence ratings (e.g. 1-5) rather than a yes/no "
                  "call, comparable with the model's AUC.",
    "MRMC": "Multi-reader multi-case analysis: compares readers (or reading with and without the model) "
            "allowing for both reader and case variation.",
    "UMAP": "A 2-D map of the model's image features: nearby points are images the model sees as similar.",
    "domain gap": "How easily a simple classifier tells synthetic lesions from real ones in the model's "
                  "features (AUC 0.5 = not at all; near 1 = a class of their own).",
    "external validation": "Testing the model on images from another source than its training data, the "
                           "best guide to how it would do elsewhere.",
    "duplicates": "Test images that are copies (or near-copies) of training images; they flatter the result.",
    "Youden": "The threshold that maximises sensitivity + specificity - 1.",
    "rule-out": "A low threshold chosen on the validation images so that 95 % of melanomas score above it; "
                "an image below it is unlikely to be melanoma (a triage aid, not a diagnosis).",
    "rule-in": "A high threshold chosen on the validation images so that 95 % of benign lesions score at or "
               "below it; an image above it is likely to be melanoma.",
    "uncertain": "The model's score moves by more than a set amount (evaluation.uncertain_spread) when the same "
                 "image is flipped or turned by 90 degrees: its answer depends on how the image was taken.",
    "risk-coverage": "The AUC on the most confident share of the images (those whose score moves least when the "
                     "image is flipped or turned): if it rises as the share falls, the uncertain flag is useful.",
}


def help_for(*terms: str) -> str:
    """The one-line definitions of ``terms``, each as '**term**: line', joined for a tooltip."""
    return "\n\n".join(f"**{term}**: {TERMS[term]}" for term in terms)


def line(term: str) -> str:
    """'term: definition' as plain text (for a caption)."""
    return f"{term}: {TERMS[term]}"
