//! `make replay`'s command line, read: the bucket (or `REPLAY_BUCKET`), the prefix, the function, the mode.

use std::time::Duration;

pub const USAGE: &str = "\
usage: replay --bucket BUCKET [--prefix aws/lambda/] [--function NAME] [--remote] [--batch-timeout-seconds 300]
              [--delete-replayed] [--dry-run]

Brings back the Kinesis batches Lambda gave up on, and the documents Firehose or the function's dead letter kept.

  --bucket BUCKET      the on-failure S3 bucket (default: REPLAY_BUCKET): the stack's FailedBatchesBucket output,
                       or FirehoseBackupBucket
  --prefix PREFIX      key prefix to replay (default aws/lambda/; \"\" reads the whole bucket)
  --function NAME      locally: copy this deployed function's environment (variables already set win); with
                       --remote: the function that replays
  --remote             replay through the deployed function (Lambda Invoke, from inside its VPC and role)
  --batch-timeout-seconds N  time allowed per batch locally, 1 to 3600 (300)
  --delete-replayed    delete each object replayed in full
  --dry-run            read and check the objects; replay nothing";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub bucket: String,
    pub prefix: String,
    pub function: Option<String>,
    pub remote: bool,
    pub batch_timeout: Duration,
    pub delete_replayed: bool,
    pub dry_run: bool,
}

/// What to do: replay, or print the usage (`--help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Replay(Options),
    Help,
}

/// Reads the arguments (`--name value` or `--name=value`); `bucket_from_env`: `REPLAY_BUCKET`. `Err` says what is
/// wrong, for the usage's first line.
pub fn parse(args: impl IntoIterator<Item = String>, bucket_from_env: Option<String>) -> Result<Command, String> {
    let mut options = Options {
        bucket: bucket_from_env.unwrap_or_default(),
        prefix: "aws/lambda/".to_owned(),
        function: None,
        remote: false,
        batch_timeout: Duration::from_secs(300),
        delete_replayed: false,
        dry_run: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--bucket" => options.bucket = value()?,
            "--prefix" => options.prefix = value()?,
            "--function" => options.function = Some(value()?),
            "--batch-timeout-seconds" => {
                let value = value()?;
                let seconds = value.parse::<u64>().ok().filter(|seconds| (1..=3600).contains(seconds));
                let seconds = seconds.ok_or(format!("--batch-timeout-seconds must be 1 to 3600, not {value:?}"))?;
                options.batch_timeout = Duration::from_secs(seconds);
            }
            "--remote" => options.remote = true,
            "--delete-replayed" => options.delete_replayed = true,
            "--dry-run" => options.dry_run = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
        if inline.is_some() && matches!(name.as_str(), "--remote" | "--delete-replayed" | "--dry-run") {
            return Err(format!("{name} takes no value"));
        }
    }
    if options.bucket.is_empty() {
        return Err("--bucket (or REPLAY_BUCKET) is required: the stack's FailedBatchesBucket output".to_owned());
    }
    if options.remote && options.function.is_none() {
        return Err("--remote needs --function: the deployed function that replays".to_owned());
    }
    Ok(Command::Replay(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str], bucket: Option<&str>) -> Result<Command, String> {
        parse(args.iter().map(|arg| (*arg).to_owned()), bucket.map(str::to_owned))
    }

    fn options(args: &[&str]) -> Options {
        match parsed(args, None) {
            Ok(Command::Replay(options)) => options,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_flag() {
        let defaults = options(&["--bucket", "b"]);
        assert_eq!(
            (defaults.prefix.as_str(), defaults.batch_timeout, defaults.remote),
            ("aws/lambda/", Duration::from_secs(300), false)
        );
        let all = options(&[
            "--bucket=b",
            "--prefix",
            "",
            "--function",
            "f",
            "--remote",
            "--batch-timeout-seconds",
            "5",
            "--delete-replayed",
            "--dry-run",
        ]);
        assert_eq!(
            all,
            Options {
                bucket: "b".into(),
                prefix: String::new(),
                function: Some("f".into()),
                remote: true,
                batch_timeout: Duration::from_secs(5),
                delete_replayed: true,
                dry_run: true,
            }
        );
        assert_eq!(parsed(&["--prefix", "x/"], Some("from-env")).map(|_| ()), Ok(()));
        assert_eq!(parsed(&["--help"], None), Ok(Command::Help));
    }

    #[test]
    fn what_is_wrong_is_said() {
        assert!(parsed(&[], None).unwrap_err().contains("--bucket (or REPLAY_BUCKET) is required"));
        assert!(parsed(&["--bucket", "b", "--remote"], None).unwrap_err().contains("--remote needs --function"));
        assert!(parsed(&["--bucket", "b", "--batch-timeout-seconds", "0"], None).unwrap_err().contains("1 to 3600"));
        assert!(parsed(&["--bucket"], None).unwrap_err().contains("needs a value"));
        assert!(parsed(&["--bucket", "b", "--binary", "x"], None).unwrap_err().contains("unknown argument"));
        assert!(parsed(&["--bucket", "b", "--dry-run=yes"], None).unwrap_err().contains("takes no value"));
    }
}
