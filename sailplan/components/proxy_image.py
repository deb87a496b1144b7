"""The builtin data plane's companion image: built from `sailplan/proxy_image/`, or an existing
reference."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build


def default_context() -> Path:
    """The build context shipped as package data: `<site-packages>/sailplan/proxy_image/`.

    Found through importlib.resources so that a plain (non-editable) install builds from the
    installed files, not from a checkout that may not exist.
    """
    context = resources.files("sailplan").joinpath("proxy_image")
    # docker-build needs a directory on disk; sailplan is never installed zipped (no zip-safe).
    return Path(str(context))


@dataclass(frozen=True)
class ProxyImageArgs:
    """Either `image` (use it as is) or `repository` (build and tag `<repository>:<tag>`)."""

    image: str | None = None
    repository: str | None = None
    tag: str = "0.1.0"
    push: bool = False
    context: str | None = None
    registry: str | None = None
    username: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None


class ProxyImage(pulumi.ComponentResource):
    ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: ProxyImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if (args.image is None) == (args.repository is None):
            raise ValueError(
                "ProxyImage needs either image= (an existing reference) or repository= (to build)"
            )
        context = Path(args.context) if args.context else default_context()
        if args.image is None and not (context / "Dockerfile").exists():
            raise ValueError(
                f"no Dockerfile in {context}: pass context= pointing at sailplan's proxy_image/ "
                "(sailplan/proxy_image/ in a checkout)"
            )
        super().__init__("sailplan:index:ProxyImage", name, None, opts)
        if args.image is not None:
            self.ref = pulumi.Output.from_input(args.image)
        else:
            registries = None
            if args.registry and args.username is not None and args.password is not None:
                registries = [
                    docker_build.RegistryArgs(
                        address=args.registry,
                        username=args.username,
                        # Kept secret in state and in the preview.
                        password=pulumi.Output.secret(args.password),
                    )
                ]
            image = docker_build.Image(
                f"{name}-build",
                context=docker_build.BuildContextArgs(location=str(context)),
                dockerfile=docker_build.DockerfileArgs(location=str(context / "Dockerfile")),
                platforms=[docker_build.Platform.LINUX_AMD64],
                tags=[f"{args.repository}:{args.tag}"],
                push=args.push,
                registries=registries,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ref = image.ref
        self.register_outputs({"ref": self.ref})
