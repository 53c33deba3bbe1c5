//! Every `weft-agent` flag can be set from the environment (systemd units and Kubernetes
//! manifests set them all that way), and the shipped manifests only use variables the agent
//! reads.

use clap::CommandFactory;
use weft_agent::AgentArgs;

fn agent_envs() -> Vec<(String, Option<String>)> {
    AgentArgs::command()
        .get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .map(|a| {
            (
                a.get_id().to_string(),
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

#[test]
fn every_agent_flag_has_an_environment_variable() {
    let missing: Vec<String> = agent_envs()
        .into_iter()
        .filter(|(_, e)| e.is_none())
        .map(|(id, _)| id)
        .collect();
    assert!(missing.is_empty(), "flags without env: {missing:?}");
}

#[test]
fn the_daemonset_sets_only_variables_the_agent_reads() {
    let manifest = include_str!("../../deploy/kubernetes/30-agent.yaml");
    let known: Vec<String> = agent_envs().into_iter().filter_map(|(_, e)| e).collect();
    // The container's env entries (`- name: X`) of the agent container.
    let agent = manifest
        .split("- name: agent\n")
        .nth(1)
        .expect("agent container in 30-agent.yaml");
    let env_block = agent
        .split("\n          env:\n")
        .nth(1)
        .and_then(|s| s.split("\n          resources:").next())
        .expect("env of the agent container");
    for line in env_block.lines() {
        let Some(name) = line.trim().strip_prefix("- name: ") else {
            continue;
        };
        let ok = known.iter().any(|k| k == name)
            || ["WEFT_LOG", "NO_COLOR", "NODE_IP"].contains(&name)
            || name.ends_with("_SERVICE_HOST")
            || name.ends_with("_SERVICE_PORT");
        assert!(
            ok,
            "30-agent.yaml sets {name}, which weft-agent does not read"
        );
    }
}
