-- The MLflow tracking store's database, next to Dagster's (created by POSTGRES_DB).
CREATE DATABASE mlflow;
-- Served recommendations and shopper feedback (scene_assets/feedback.py; SCENE_MATCHER_FEEDBACK_DB_URL).
CREATE DATABASE feedback;
