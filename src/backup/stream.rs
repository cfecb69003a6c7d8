//! Getting a dump's bytes out of the container and into the pipeline: from the dump tool's
//! stdout, or (`to_file` engines) from the file it wrote, read with `cat` and removed after.
//! One frame at a time, so the pipeline's bounded queue is the backpressure all the way to
//! the tool; the stream's end is followed for the completeness checks ([`super::judge`]).

use std::time::Instant;

use tokio::io::AsyncWriteExt;

use super::{Failure, PROGRESS_EVERY, Session, Step, buffer, io, judge};
use crate::docker::exec::{self, ExecError, ExecRequest, ExecStream};
use crate::engine::Invocation;
use crate::engine::trailer::Checker;
use crate::pipeline::PipelineWriter;

impl Session<'_> {
    /// Starts the dump tool as an exec (stdin open when the spec has a line for it).
    async fn start_tool(
        &self,
        inv: Invocation,
        user: Option<String>,
    ) -> Result<ExecStream, (Step, Failure)> {
        let req = ExecRequest {
            argv: inv.argv,
            env: inv.env,
            stdin: inv.stdin.is_some(),
            user,
        };
        ExecStream::start(self.docker, &self.site.container_id, &req)
            .await
            .map_err(|e| (Step::Dump, Failure::Exec(e)))
    }

    /// Judges the dump tool's exit ([`judge::judge_exit`]) against this session's container.
    async fn judge_exit(
        &self,
        status: exec::ExitStatus,
        dump: &crate::engine::spec::Dump,
        tool: String,
        database: &str,
    ) -> Result<(), (Step, Failure)> {
        let started = self.container_started.as_deref();
        judge::judge_exit(
            self.docker,
            self.target,
            status,
            dump,
            tool,
            database,
            started,
        )
        .await
    }

    /// Streams the dump tool's stdout into the pipeline and judges it.
    pub(super) async fn via_stdout(
        &self,
        inv: Invocation,
        user: Option<String>,
        writer: &mut PipelineWriter,
        database: &str,
    ) -> Result<(), (Step, Failure)> {
        let dump = inv.dump.clone().expect("dump invocations carry their spec");
        let tool = inv.argv[0].clone();
        let inv = buffer::buffered(inv, self.stdbuf);
        let mut stream = self.start_tool(inv.clone(), user).await?;
        crate::fault::point("dump:exec-started");
        send_line(&mut stream, inv.stdin.as_ref()).await?;
        let mut tail = exec::TailWindow::new(dump.marker_window);
        let mut checker = dump.trailer.map(Checker::new);
        self.copy_stream(&mut stream, writer, (&mut tail, checker.as_mut()), database)
            .await?;
        crate::fault::point("dump:stream-ended");
        let status = stream
            .finish()
            .await
            .map_err(|e| (Step::Dump, Failure::Exec(e)))?;
        self.judge_exit(status, &dump, tool, database).await?;
        match judge::judge_end(&dump, &tail, checker) {
            Some(failure) => Err((Step::Check, failure)),
            None => Ok(()),
        }
    }

    /// Runs a dump tool that writes `path` inside the container, judges it, then streams the
    /// file into the pipeline with `cat` and judges the stream.
    pub(super) async fn via_file(
        &self,
        inv: Invocation,
        user: Option<String>,
        path: &str,
        writer: &mut PipelineWriter,
        database: &str,
    ) -> Result<(), (Step, Failure)> {
        let dump = inv.dump.clone().expect("dump invocations carry their spec");
        let tool = inv.argv[0].clone();
        let mut stream = self.start_tool(inv.clone(), user.clone()).await?;
        send_line(&mut stream, inv.stdin.as_ref()).await?;
        // The tool's own stdout is progress text: read and dropped.
        while let Some(chunk) = stream.next_stdout().await {
            chunk.map_err(|e| (Step::Dump, Failure::Exec(e)))?;
        }
        let status = stream
            .finish()
            .await
            .map_err(|e| (Step::Dump, Failure::Exec(e)))?;
        self.judge_exit(status, &dump, tool, database).await?;
        tracing::debug!(target = %self.target.name, database, path, "dump written in the container; streaming it out");
        let cat = ExecRequest {
            argv: ["cat", "--", path].map(String::from).to_vec(),
            user,
            ..Default::default()
        };
        let mut stream = ExecStream::start(self.docker, &self.site.container_id, &cat)
            .await
            .map_err(|e| (Step::Dump, Failure::Exec(e)))?;
        let mut tail = exec::TailWindow::new(dump.marker_window);
        let mut checker = dump.trailer.map(Checker::new);
        self.copy_stream(&mut stream, writer, (&mut tail, checker.as_mut()), database)
            .await?;
        let status = stream
            .finish()
            .await
            .map_err(|e| (Step::Dump, Failure::Exec(e)))?;
        if !status.success() {
            let failure = Failure::Exit {
                tool: "cat (reading the dump file)".into(),
                status,
                container_running: true,
            };
            return Err((Step::Dump, failure));
        }
        match judge::judge_end(&dump, &tail, checker) {
            Some(failure) => Err((Step::Check, failure)),
            None => Ok(()),
        }
    }

    /// Removes a `to_file` dump's temp file from the container; a failure is logged.
    pub(super) async fn remove_file(&self, path: &str, user: Option<String>) {
        let container = &self.site.container_id;
        if let Err(why) = exec::remove_file(self.docker, container, path, user).await {
            tracing::warn!(target = %self.target.name, path, "could not remove the dump's temp file in the container: {why}");
        }
    }

    /// Moves the dump's stdout into the pipeline, one frame at a time (backpressure: the next
    /// frame is pulled only when the writer took this one), logging progress; returns the
    /// bytes moved.
    async fn copy_stream(
        &self,
        stream: &mut ExecStream,
        writer: &mut PipelineWriter,
        (tail, mut checker): (&mut exec::TailWindow, Option<&mut Checker>),
        database: &str,
    ) -> Result<u64, (Step, Failure)> {
        let clock = Instant::now();
        let mut raw: u64 = 0;
        let mut pieces: u64 = 0;
        let mut last_report = Instant::now();
        while let Some(chunk) = stream.next_stdout().await {
            let chunk = chunk.map_err(|e| (Step::Dump, Failure::Exec(e)))?;
            tail.push(&chunk);
            if let Some(c) = checker.as_deref_mut() {
                c.push(&chunk);
            }
            let chunk_len = chunk.len() as u64;
            raw += chunk_len;
            pieces += 1;
            writer.write(chunk).await.map_err(io)?;
            if raw == chunk_len {
                crate::fault::point("dump:first-chunk");
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                let secs = clock.elapsed().as_secs_f64();
                tracing::info!(
                    target = %self.target.name, database, raw_bytes = raw,
                    mib_per_s = format!("{:.1}", raw as f64 / 1048576.0 / secs),
                    "backup in progress"
                );
            }
        }
        // How the bytes arrived: many small pieces mean many wake-ups along the chain.
        tracing::debug!(
            target = %self.target.name, database, raw_bytes = raw, pieces,
            mean_piece = raw.checked_div(pieces).unwrap_or(0),
            secs = format!("{:.2}", clock.elapsed().as_secs_f64()),
            "dump stream ended"
        );
        Ok(raw)
    }
}

/// Writes the spec's stdin line (a password, say) to the dump tool and closes its stdin.
pub(super) async fn send_line(
    stream: &mut ExecStream,
    line: Option<&crate::secret::Secret>,
) -> Result<(), (Step, Failure)> {
    if let (Some(line), Some(mut stdin)) = (line, stream.take_stdin()) {
        // A short line: it fits the pipe, so this cannot wait on the tool reading it.
        let sent = async {
            stdin.write_all(line.expose().as_bytes()).await?;
            stdin.shutdown().await
        };
        sent.await
            .map_err(|e| (Step::Dump, Failure::Exec(ExecError::Stdin(e))))?;
    }
    Ok(())
}
