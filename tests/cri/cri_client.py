#!/usr/bin/env python3
"""A minimal CRI client (runtime.v1) for the containerd e2e test: creates a pod sandbox (the
runtime's CNI call), a busybox container in it, and runs a command there.

  cri_client.py SOCKET run NAME IMAGE      -> prints "SANDBOX_ID CONTAINER_ID POD_IP"
  cri_client.py SOCKET exec CONTAINER_ID TIMEOUT CMD...  -> the command's output; exit status
  cri_client.py SOCKET rm SANDBOX_ID
  cri_client.py SOCKET rmall
Stubs are generated from the CRI api.proto (k8s.io/cri-api) into $CRI_GEN by the test.
"""
import os
import sys
import uuid

sys.path.insert(0, os.environ["CRI_GEN"])
import grpc  # noqa: E402
import api_pb2 as pb  # noqa: E402
import api_pb2_grpc as rpc  # noqa: E402


def main():
    sock, cmd = sys.argv[1], sys.argv[2]
    ch = grpc.insecure_channel("unix://" + sock)
    rt = rpc.RuntimeServiceStub(ch)
    if cmd == "run":
        name, image = sys.argv[3], sys.argv[4]
        sb = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=str(uuid.uuid4()), namespace="default", attempt=0),
            hostname=name,
            log_directory="",
            linux=pb.LinuxPodSandboxConfig(),
        )
        sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sb), timeout=120).pod_sandbox_id
        st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid), timeout=30)
        ip = st.status.network.ip
        cc = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="bb", attempt=0),
            image=pb.ImageSpec(image=image),
            command=["/bin/sleep", "3600"],
            linux=pb.LinuxContainerConfig(),
        )
        cid = rt.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc, sandbox_config=sb), timeout=60
        ).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        print(sid, cid, ip)
    elif cmd == "exec":
        cid, timeout, argv = sys.argv[3], int(sys.argv[4]), sys.argv[5:]
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=argv, timeout=timeout), timeout=timeout + 10)
        sys.stdout.write(r.stdout.decode())
        sys.stdout.write(r.stderr.decode())
        sys.exit(r.exit_code)
    elif cmd == "rmall":
        for sb in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
            rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sb.id), timeout=60)
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sb.id), timeout=60)
    elif cmd == "rm":
        sid = sys.argv[3]
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
