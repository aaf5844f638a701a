"""Tasks of the AI area: the builder's jobs (app/ai/jobs.py), one task per job."""
from app.ai import jobs
from tasks import huey


@huey.task(name="ai.run_ai_job")
def run_ai_job(job_id):
    jobs.run(job_id)
