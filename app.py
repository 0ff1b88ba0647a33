"""MelaNet dashboard: `streamlit run app.py`.

Every page reads run folders (shipped ones in models/, the user's in runs/) and calls the melanet
package; training always runs in a separate process launched through melanet.runs.jobs.
"""

from pathlib import Path

import streamlit as st

# The favicon is a file shipped here: a ':material/...' or emoji icon makes every browser fetch it from a
# font CDN, and the dashboard must work (and stay silent) offline.
ICON = Path(__file__).resolve().parent / "dashboard" / "static" / "melanet-icon.png"
st.set_page_config(page_title="MelaNet", page_icon=str(ICON), layout="wide")

# URL paths differ from the file names on purpose: Streamlit 1.67 still maps a first request for
# /<file stem> to the file in pages/ *without* running this script (no navigation, no page config).
PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="training"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="comparison"),
    st.Page("pages/external.py", title="External validation", icon=":material/travel_explore:",
            url_path="external-validation"),
    st.Page("pages/lesions.py", title="Synthesized lesions", icon=":material/auto_awesome:",
            url_path="synthesized-lesions"),
    st.Page("pages/gradcam.py", title="Grad-CAM", icon=":material/visibility:", url_path="grad-cam"),
    st.Page("pages/umap.py", title="UMAP", icon=":material/scatter_plot:", url_path="umap-embedding"),
    st.Page("pages/predict.py", title="Predict", icon=":material/upload_file:", url_path="prediction"),
    st.Page("pages/reader_study.py", title="Reader study", icon=":material/groups:", url_path="reader-study"),
]

page = st.navigation(PAGES)
st.sidebar.caption("MelaNet reproduction (Zunair & Hamza 2020). Research use only, not a medical device.")
page.run()
