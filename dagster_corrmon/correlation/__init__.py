"""The correlation layer: sensor → job → attribution → incident → annotation → retrain."""
