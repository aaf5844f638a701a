"""Tasks of the AI area: the builder's jobs (app/ai/jobs.py), one task per job."""
from app.ai import jobs
from tasks import huey
from tasks import retry_policy


@retry_policy(0, 0, "the job keeps its failure in words; the provider call has its own retries, a rerun pays twice")
@huey.task(name="ai.run_ai_job")
def run_ai_job(job_id):
    jobs.run(job_id)
