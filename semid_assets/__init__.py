"""semid: semantic IDs for recommender catalogues, as Dagster assets."""
