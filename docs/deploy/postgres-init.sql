-- The MLflow tracking store's database, next to Dagster's (created by POSTGRES_DB).
CREATE DATABASE mlflow;
