//! The Git credential flags, declared once for both programs: the agent's for its tenant's
//! repository (`--ca-file`, `--username`, `--password-file`, `--ssh-key`, `--known-hosts`, also
//! from `BERTH_GIT_*`) and the operator's for the platform repository (`--platform-ca-file` and
//! so on, flags only). clap cannot prefix the flags of a flattened struct, so one macro writes
//! both structs, and the spellings the operator passes to its agents, from its one list.

use std::path::PathBuf;

use super::{Auth, RepoUrl};

macro_rules! git_flags {
    (
        $(#[$doc:meta])*
        $name:ident, long = $long:literal $(, env = $env:literal)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, clap::Args)]
        pub struct $name {
            #[arg(
                long = concat!($long, "ca-file"),
                value_name = "FILE",
                help = "PEM file of the only CAs trusted for an HTTPS repository (default: the system's roots)"
                $(, env = concat!($env, "CA_FILE"))?
            )]
            pub ca_file: Option<PathBuf>,
            #[arg(
                long = concat!($long, "username"),
                value_name = "NAME",
                requires = "password_file",
                help = concat!(
                    "HTTPS username (with --", $long, "password-file; for a token, the name the forge expects)"
                )
                $(, env = concat!($env, "USERNAME"))?
            )]
            pub username: Option<String>,
            #[arg(
                long = concat!($long, "password-file"),
                value_name = "FILE",
                requires = "username",
                help = "File holding the HTTPS password or token"
                $(, env = concat!($env, "PASSWORD_FILE"))?
            )]
            pub password_file: Option<PathBuf>,
            #[arg(
                long = concat!($long, "ssh-key"),
                value_name = "FILE",
                requires = "known_hosts",
                help = concat!("SSH private key (with --", $long, "known-hosts)")
                $(, env = concat!($env, "SSH_KEY"))?
            )]
            pub ssh_key: Option<PathBuf>,
            #[arg(
                long = concat!($long, "known-hosts"),
                value_name = "FILE",
                requires = "ssh_key",
                help = "known_hosts file the SSH server's host key must be in"
                $(, env = concat!($env, "KNOWN_HOSTS"))?
            )]
            pub known_hosts: Option<PathBuf>,
        }

        impl $name {
            /// The flags as spelt on the command line, for a program that passes them.
            pub const CA_FILE: &str = concat!("--", $long, "ca-file");
            pub const USERNAME: &str = concat!("--", $long, "username");
            pub const PASSWORD_FILE: &str = concat!("--", $long, "password-file");
            pub const SSH_KEY: &str = concat!("--", $long, "ssh-key");
            pub const KNOWN_HOSTS: &str = concat!("--", $long, "known-hosts");
            $(
                /// The variable the user name may come from instead (the operator sets it
                /// from a Secret rather than passing the name on the command line).
                pub const USERNAME_ENV: &str = concat!($env, "USERNAME");
            )?

            /// How to authenticate to the repository at `url` (see [`Auth::from_flags`]).
            pub fn auth(&self, url: &RepoUrl) -> Result<Auth, String> {
                Auth::from_flags(
                    url,
                    self.username.as_deref(),
                    self.password_file.as_deref(),
                    self.ssh_key.as_deref(),
                    self.known_hosts.as_deref(),
                )
            }
        }
    };
}

git_flags! {
    /// The credentials of a tenant's repository, `berth-agent run`'s.
    GitFlags, long = "", env = "BERTH_GIT_"
}

git_flags! {
    /// The credentials of the platform repository, `berth-operator run`'s.
    PlatformGitFlags, long = "platform-"
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Agent {
        #[command(flatten)]
        git: GitFlags,
    }

    #[derive(Parser)]
    struct Operator {
        #[command(flatten)]
        git: PlatformGitFlags,
    }

    #[test]
    fn both_spellings_come_from_one_list() {
        let agent = Agent::try_parse_from([
            "agent",
            GitFlags::SSH_KEY,
            "id",
            GitFlags::KNOWN_HOSTS,
            "kh",
            GitFlags::CA_FILE,
            "ca.pem",
        ])
        .unwrap();
        assert_eq!(agent.git.ssh_key, Some("id".into()));
        assert_eq!(agent.git.ca_file, Some("ca.pem".into()));
        let operator = Operator::try_parse_from([
            "operator",
            "--platform-username",
            "u",
            "--platform-password-file",
            "p",
        ])
        .unwrap();
        assert_eq!(operator.git.username.as_deref(), Some("u"));
        assert_eq!(PlatformGitFlags::PASSWORD_FILE, "--platform-password-file");
        assert_eq!(GitFlags::USERNAME, "--username");
    }

    #[test]
    fn what_goes_together_is_required_together() {
        let error = Operator::try_parse_from(["operator", "--platform-ssh-key", "id"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("--platform-known-hosts"), "{error}");
        assert!(Agent::try_parse_from(["agent", "--username", "u"]).is_err());
    }
}
