//! Running a command inside a container through the Docker exec API.
//!
//! Always an argv array (never a shell string), `tty=false` so stdout and stderr arrive as
//! separate frames and binary data passes intact. [`ExecStream`] hands stdout over chunk by
//! chunk: nothing is read from the engine until the caller asks for the next chunk, so a slow
//! consumer slows the dump tool down (backpressure) instead of filling memory. stderr is kept
//! up to a bound for error messages. The exit code comes from the exec's inspection; an exec
//! whose code cannot be read counts as failed.

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::secret::Secret;

/// How much stderr is kept (the end of it, which holds the error).
pub const STDERR_LIMIT: usize = 16 * 1024;

/// Read buffer for the exec's output.
const OUTPUT_CAPACITY: usize = 32 * 1024;

/// An exec that could not run or whose output broke off.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The engine refused or failed the request.
    #[error("Docker API error: {0}")]
    Api(#[from] bollard::errors::Error),
    /// The engine sent data that is not an exec frame (the stream was cut mid-frame).
    #[error("the output stream from the container broke off mid-frame")]
    Broken,
    /// Writing to the command's stdin failed.
    #[error("writing to the command's stdin: {0}")]
    Stdin(std::io::Error),
    /// A captured command wrote more than allowed.
    #[error("command output exceeds {0} bytes")]
    TooLarge(usize),
}

impl crate::error::Temporary for ExecError {
    fn is_temporary(&self) -> bool {
        match self {
            // The engine answered: 404 (no such container) and 409 (not running) stay so
            // until someone acts; a 5xx or a broken connection may not.
            Self::Api(e) => api_is_temporary(e),
            Self::Broken | Self::Stdin(_) => true,
            Self::TooLarge(_) => false,
        }
    }
}

/// Whether a Docker API error may go away by itself.
pub fn api_is_temporary(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        E::JsonDataError { .. } | E::JsonSerdeError { .. } => false,
        _ => true,
    }
}

/// The last `n` non-empty lines of a command's output, joined with " | ".
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A command to run.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment entries for the process; values may be secrets.
    pub env: Vec<(String, Secret)>,
    /// Whether the process gets a stdin to write to ([`ExecStream::take_stdin`]).
    pub stdin: bool,
    /// `uid:gid` to run as, instead of the container's user.
    pub user: Option<String>,
}

/// The write end of an exec's stdin. Shut it down to give the process end-of-file.
pub type Stdin = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// How an exec ended.
#[derive(Debug, Clone)]
pub struct ExitStatus {
    /// The exit code, when the engine reports one.
    pub code: Option<i64>,
    /// The end of stderr, lossily decoded.
    pub stderr: String,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

type Output =
    std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A running exec whose stdout is read chunk by chunk.
pub struct ExecStream {
    docker: Docker,
    id: String,
    output: Output,
    stdin: Option<Stdin>,
    stderr: Vec<u8>,
}

impl ExecStream {
    /// Creates and starts the exec in `container`.
    pub async fn start(
        docker: &Docker,
        container: &str,
        req: &ExecRequest,
    ) -> Result<Self, ExecError> {
        let env: Vec<String> = req
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", v.expose()))
            .collect();
        let created = docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(req.argv.clone()),
                    env: Some(env),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(req.stdin),
                    user: req.user.clone(),
                    tty: Some(false),
                    ..Default::default()
                },
            )
            .await?;
        let started = docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(OUTPUT_CAPACITY),
                }),
            )
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            unreachable!("an exec started with detach=false is attached");
        };
        Ok(Self {
            docker: docker.clone(),
            id: created.id,
            output,
            stdin: req.stdin.then_some(input),
            stderr: Vec::new(),
        })
    }

    /// The process's stdin, once, if it was requested.
    pub fn take_stdin(&mut self) -> Option<Stdin> {
        self.stdin.take()
    }

    /// The exec's ID (as in `docker inspect`'s `ExecIDs`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next stdout chunk; `None` when the command closed its output.
    pub async fn next_stdout(&mut self) -> Option<Result<Bytes, ExecError>> {
        loop {
            match self.output.next().await? {
                Ok(LogOutput::StdOut { message }) => return Some(Ok(message)),
                Ok(LogOutput::StdErr { message }) => {
                    keep_tail(&mut self.stderr, &message, STDERR_LIMIT)
                }
                Ok(LogOutput::StdIn { .. }) => {}
                // With tty=false every frame has a header; raw bytes mean a cut-off frame.
                Ok(LogOutput::Console { .. }) => return Some(Err(ExecError::Broken)),
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    /// stderr seen so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Drains what is left of the output (discarding stdout) and reads the exit code. The
    /// engine may report the exec as running for a moment after its output closes; this
    /// asks again after 5 ms, doubling up to 100 ms, for about five seconds in all (a
    /// backup waits for this, so the first answers are asked for soon).
    pub async fn finish(mut self) -> Result<ExitStatus, ExecError> {
        while let Some(chunk) = self.next_stdout().await {
            chunk?;
        }
        let mut code = None;
        let mut pause = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        while waited < Duration::from_secs(5) {
            let inspect = self.docker.inspect_exec(&self.id).await?;
            if inspect.running != Some(true) {
                code = inspect.exit_code;
                break;
            }
            tokio::time::sleep(pause).await;
            waited += pause;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        Ok(ExitStatus {
            code,
            stderr: self.stderr(),
        })
    }
}

/// Runs a short command and collects its stdout, refusing more than `limit` bytes.
pub async fn capture(
    docker: &Docker,
    container: &str,
    req: &ExecRequest,
    limit: usize,
) -> Result<(Vec<u8>, ExitStatus), ExecError> {
    let mut stream = ExecStream::start(docker, container, req).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_stdout().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(ExecError::TooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    let status = stream.finish().await?;
    Ok((out, status))
}

/// The last bytes of a stream, kept without copying: references to the final chunks that
/// cover at least `window` bytes.
#[derive(Debug, Default)]
pub struct TailWindow {
    window: usize,
    chunks: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl TailWindow {
    /// Keeps at least the last `window` bytes.
    pub fn new(window: usize) -> Self {
        Self {
            window,
            ..Default::default()
        }
    }

    /// Records a chunk (a reference, not a copy).
    pub fn push(&mut self, chunk: &Bytes) {
        self.chunks.push_back(chunk.clone());
        self.len += chunk.len();
        while let Some(front) = self.chunks.front() {
            if self.len - front.len() < self.window {
                break;
            }
            self.len -= front.len();
            self.chunks.pop_front();
        }
    }

    /// The last `n` bytes (fewer if fewer were pushed).
    pub fn last(&self, n: usize) -> Vec<u8> {
        let mut tail: Vec<u8> = Vec::with_capacity(self.len);
        for c in &self.chunks {
            tail.extend_from_slice(c);
        }
        tail.split_off(tail.len().saturating_sub(n))
    }

    /// Whether `needle` occurs within the last `window` bytes.
    pub fn contains(&self, needle: &[u8]) -> bool {
        let tail = self.last(self.window);
        !needle.is_empty() && tail.windows(needle.len()).any(|w| w == needle)
    }
}

/// Removes a file inside a container (`rm -f -- PATH` as `user`); `Err` says why it could not.
pub async fn remove_file(
    docker: &Docker,
    container: &str,
    path: &str,
    user: Option<String>,
) -> Result<(), String> {
    let rm = ExecRequest {
        argv: ["rm", "-f", "--", path].map(String::from).to_vec(),
        user,
        ..Default::default()
    };
    match capture(docker, container, &rm, 4096).await {
        Ok((_, status)) if status.success() => Ok(()),
        Ok((_, status)) => Err(last_lines(&status.stderr, 2)),
        Err(e) => Err(e.to_string()),
    }
}

/// Appends `data` to `buf`, keeping only the last `limit` bytes.
pub fn keep_tail(buf: &mut Vec<u8>, data: &[u8], limit: usize) {
    if data.len() >= limit {
        buf.clear();
        buf.extend_from_slice(&data[data.len() - limit..]);
        return;
    }
    let overflow = (buf.len() + data.len()).saturating_sub(limit);
    buf.drain(..overflow);
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_skips_blanks() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }

    #[test]
    fn tail_window_finds_markers_across_chunks_and_only_near_the_end() {
        let mut t = TailWindow::new(32);
        for c in ["-- dump ", "complete --\n", "\\unrestrict k\n"] {
            t.push(&Bytes::from(c));
        }
        assert!(
            t.contains(b"complete --"),
            "split across chunks, inside the window"
        );
        let mut t = TailWindow::new(16);
        t.push(&Bytes::from("complete"));
        t.push(&Bytes::from(vec![b'x'; 16]));
        assert!(!t.contains(b"complete"), "outside the window");
        assert!(t.chunks.len() == 1 && t.len == 16);
    }

    #[test]
    fn tail_is_bounded() {
        let mut b = Vec::new();
        keep_tail(&mut b, b"hello ", 8);
        keep_tail(&mut b, b"world", 8);
        assert_eq!(b, b"lo world");
        keep_tail(&mut b, b"0123456789", 8);
        assert_eq!(b, b"23456789");
    }
}
