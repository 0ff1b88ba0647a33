"""MelaNet dashboard: `streamlit run app.py`.

Every page reads run folders (shipped ones in models/, the user's in runs/) and calls the melanet
package; training always runs in a separate process launched through melanet.runs.jobs.
"""

import os
from pathlib import Path

import streamlit as st

from dashboard import navigation

# The favicon is a file shipped here: a ':material/...' or emoji icon makes every browser fetch it from a
# font CDN, and the dashboard must work (and stay silent) offline.
ICON = Path(__file__).resolve().parent / "dashboard" / "static" / "melanet-icon.png"
st.set_page_config(page_title="MelaNet", page_icon=str(ICON), layout="wide")

# Each page opens at its file name (/predict for pages/predict.py: Streamlit's default url_path; / shows
# the Overview too) and at the paths it had before, which move on to the file name
# (dashboard/navigation.py says why it is done so).
PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/home:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/external.py", title="External validation", icon=":material/travel_explore:"),
    st.Page("pages/lesions.py", title="Synthesized lesions", icon=":material/auto_awesome:"),
    st.Page("pages/gradcam.py", title="Grad-CAM", icon=":material/visibility:"),
    st.Page("pages/umap.py", title="UMAP", icon=":material/scatter_plot:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/upload_file:"),
    st.Page("pages/reader_study.py", title="Reader study", icon=":material/groups:"),
]
OTHER_PATHS = {"Train": ["training"], "Compare": ["comparison"],
               "External validation": ["external-validation"], "Synthesized lesions": ["synthesized-lesions"],
               "Grad-CAM": ["grad-cam"], "UMAP": ["umap-embedding"], "Predict": ["prediction"],
               "Reader study": ["reader-study"]}

if os.environ.get("MELANET_READING_ONLY") == "1":  # readers' server: the reader page alone, no navigation
    navigation.run_alone(st.Page("pages/reader_study.py", title="Reader study", default=True))
    st.stop()
st.sidebar.caption("MelaNet reproduction (Zunair & Hamza 2020). Research use only, not a medical device.")
navigation.run(PAGES, OTHER_PATHS, root_script="pages/overview.py")
