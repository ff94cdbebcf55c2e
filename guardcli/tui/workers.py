"""The jobs' worker threads: each judges through the app's Guard, writes every result to the
``--output`` log before the interface hears of it, and stops at the engine's next step when
the job's stop flag is set."""

from __future__ import annotations

from textual import work
from textual.worker import get_current_worker

from guardcli.core.records import Sample, Skip
from guardcli.io.inputs import iter_samples
from guardcli.tui.jobs import BatchRow, BatchStarted, Ended, Finished, Job, Piece


class Workers:
    """Mixed into GuardApp, which provides ``guard``, ``output``, ``input_options`` and
    ``post_message``."""

    @work(thread=True, group="guard", exit_on_error=False)
    def _classify(self, job: Job, sample: Sample) -> None:
        worker = get_current_worker()

        def on_text(_row: int, piece: str) -> None:
            job.pieces += 1
            self.post_message(Piece(job, piece))

        try:
            result = self.guard.classify_batch(
                [sample],
                on_text=on_text,
                cancelled=lambda: job.stop.is_set() or worker.is_cancelled,
            )[0]
            if self.output is not None:
                self.output.write(result)
        except KeyboardInterrupt:
            self.post_message(Ended(job, "cancelled"))
        except Exception as exc:  # noqa: BLE001 - shown in the interface, not a traceback
            self.post_message(Ended(job, "failed", str(exc)))
        else:
            self.post_message(Finished(job, result))
            self.post_message(Ended(job, "done"))
        finally:
            if self.output is not None:
                self.output.end()

    @work(thread=True, group="guard", exit_on_error=False)
    def _run_batch(self, job: Job, paths: list[str]) -> None:
        worker = get_current_worker()

        def stopped() -> bool:
            return job.stop.is_set() or worker.is_cancelled

        def on_text(_row: int, _piece: str) -> None:
            job.pieces += 1

        try:
            items = list(iter_samples(paths, self.input_options))
            samples = [item for item in items if isinstance(item, Sample)]
            skips = [item for item in items if isinstance(item, Skip)]
            self.post_message(BatchStarted(job, ", ".join(paths), len(samples), skips))
            size = max(1, self.guard.options.batch_size)
            for start in range(0, len(samples), size):
                if stopped():
                    raise KeyboardInterrupt
                chunk = samples[start : start + size]
                for result in self.guard.classify_batch(chunk, on_text=on_text, cancelled=stopped):
                    if self.output is not None:
                        self.output.write(result)  # on disk before anyone is told
                    self.post_message(BatchRow(job, result))
        except KeyboardInterrupt:
            self.post_message(Ended(job, "cancelled"))
        except Exception as exc:  # noqa: BLE001 - GuardError or a runtime failure, shown
            self.post_message(Ended(job, "failed", str(exc)))
        else:
            self.post_message(Ended(job, "done"))
        finally:
            if self.output is not None:
                self.output.end()
