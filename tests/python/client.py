"""Drives runtimed's gRPC API from Python, with stubs generated from our
.proto at run time, to show the API stands on its own for orchestrators.

usage: client.py PROTO_ROOT SOCKET
"""
import atexit
import shutil
import sys
import tempfile

import grpc
from grpc_tools import protoc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def generate(proto_root):
    out = tempfile.mkdtemp(prefix="rtpy-")
    atexit.register(shutil.rmtree, out, True)
    rc = protoc.main([
        "protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}",
        "runtime/v1/runtime.proto",
    ])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, out)


def main():
    proto_root, socket = sys.argv[1], sys.argv[2]
    generate(proto_root)
    from runtime.v1 import runtime_pb2 as pb
    from runtime.v1 import runtime_pb2_grpc as rpc

    # grpcio would send the socket path as :authority, which HTTP/2 servers
    # (hyper) reject as malformed; any host name does.
    ch = grpc.insecure_channel(f"unix://{socket}", options=[("grpc.default_authority", "localhost")])
    containers = rpc.ContainersStub(ch)
    system = rpc.SystemStub(ch)
    images = rpc.ImagesStub(ch)

    assert system.Version(pb.VersionRequest()).version
    assert any(i.name == "busybox" for i in images.ListImages(pb.ListImagesRequest()).images)

    # Attached run: the id first, then output, then the exit code.
    # The request stream is only the container; ending it closes stdin.
    events = list(containers.RunContainer(iter([pb.RunContainerRequest(
        name="pyrun",
        config=pb.ContainerConfig(image="busybox", cmd=["sh", "-c", "echo from python; exit 5"],
                                  auto_remove=True))])))
    assert events[0].WhichOneof("event") == "id", events
    output = b"".join(e.stdout for e in events if e.WhichOneof("event") == "stdout")
    assert output == b"from python\n", output
    assert events[-1].exit_code == 5, events[-1]

    # Stdin streamed after the first request reaches the container.
    def typed():
        yield pb.RunContainerRequest(config=pb.ContainerConfig(image="busybox", cmd=["cat"], open_stdin=True,
                                                               auto_remove=True))
        yield pb.RunContainerRequest(input=pb.StreamInput(stdin=b"\x00binary\xff"))
        yield pb.RunContainerRequest(input=pb.StreamInput(close_stdin=True))
    events = list(containers.RunContainer(typed()))
    output = b"".join(e.stdout for e in events if e.WhichOneof("event") == "stdout")
    assert output == b"\x00binary\xff" and events[-1].exit_code == 0, events

    cid = containers.CreateContainer(pb.CreateContainerRequest(
        name="py", config=pb.ContainerConfig(image="busybox", cmd=["sleep", "300"]))).id
    assert containers.StartContainer(pb.StartContainerRequest(container="py")).pid > 0
    info = containers.InspectContainer(pb.InspectContainerRequest(container=cid[:8])).container
    assert info.state == pb.CONTAINER_STATE_RUNNING and info.name == "py", info
    listed = containers.ListContainers(pb.ListContainersRequest(all=False)).containers
    assert [c.id for c in listed] == [cid], listed
    res = containers.ExecContainerSync(pb.ExecContainerSyncRequest(container="py", cmd=["sh", "-c", "echo hi; exit 2"]))
    assert (res.exit_code, res.stdout) == (2, b"hi\n"), res
    # Past its documented cap the one-shot exec fails clearly (the stream has none).
    try:
        containers.ExecContainerSync(pb.ExecContainerSyncRequest(container="py", cmd=["head", "-c", "5000000", "/dev/zero"]))
        raise AssertionError("an exec over the cap succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.OUT_OF_RANGE and "3 MiB" in e.details(), e
    try:
        containers.ExecContainerSync(pb.ExecContainerSyncRequest(container="py", cmd=["sleep", "30"], timeout_seconds=1))
        raise AssertionError("an exec past its timeout succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    # The streamed exec names itself first, then streams, then the code.
    events = list(containers.ExecContainer(iter([pb.ExecContainerRequest(container="py", cmd=["sh", "-c", "echo streamed; exit 6"])])))
    assert events[0].WhichOneof("event") == "exec_id" and len(events[0].exec_id) == 64, events
    assert b"".join(e.stdout for e in events) == b"streamed\n" and events[-1].exit_code == 6, events
    # An orchestrator resizes a detached tty exec and waits for it by id.
    started = list(containers.ExecContainer(iter([pb.ExecContainerRequest(
        container="py", cmd=["sh", "-c", "sleep 1; stty size > /tmp/size; exit 9"], tty=True, detach=True)])))
    exec_id = started[0].exec_id
    containers.ResizeExec(pb.ResizeExecRequest(exec_id=exec_id, size=pb.TerminalSize(rows=33, cols=77)))
    assert containers.WaitExec(pb.WaitExecRequest(exec_id=exec_id)).exit_code == 9
    res = containers.ExecContainerSync(pb.ExecContainerSyncRequest(container="py", cmd=["cat", "/tmp/size"]))
    assert res.stdout == b"33 77\n", res
    try:
        containers.WaitExec(pb.WaitExecRequest(exec_id="nope"))
        raise AssertionError("waiting for an unknown exec succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
    containers.KillContainer(pb.KillContainerRequest(container="py", signal="TERM"))
    containers.StopContainer(pb.StopContainerRequest(container="py", timeout_seconds=1))
    assert containers.WaitContainer(pb.WaitContainerRequest(container="py")).exit_code == 137
    containers.RemoveContainer(pb.RemoveContainerRequest(container="py"))

    try:
        containers.InspectContainer(pb.InspectContainerRequest(container="ghost"))
        raise AssertionError("inspect of a missing container succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
        assert "No such container: ghost" in e.details(), e.details()
    try:
        containers.CreateContainer(pb.CreateContainerRequest(name="x", config=pb.ContainerConfig(image="nope")))
        raise AssertionError("create with a missing image succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e

    try:
        containers.CreateContainer(pb.CreateContainerRequest(name="noconfig"))
        raise AssertionError("create without a config succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    try:
        containers.KillContainer(pb.KillContainerRequest(container="", signal="KILL"))
        raise AssertionError("kill without a container succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert not containers.ListContainers(pb.ListContainersRequest(all=True)).containers

    health = health_pb2_grpc.HealthStub(ch)
    status = health.Check(health_pb2.HealthCheckRequest(service="runtime.v1.Containers")).status
    assert status == health_pb2.HealthCheckResponse.SERVING, status

    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    answers = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {"runtime.v1.Containers", "runtime.v1.Images", "runtime.v1.System"} <= names, names
    print("ok")


if __name__ == "__main__":
    main()
