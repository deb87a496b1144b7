"""The builtin data plane's companion image: built from `sailplan/proxy_image/`, or an existing
reference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from sailplan.components.args import ArgsError, require_bool, require_input_str, require_str


def default_context() -> Path:
    """The build context shipped as package data: `<site-packages>/sailplan/proxy_image/`.

    Found through importlib.resources so that a plain (non-editable) install builds from the
    installed files, not from a checkout that may not exist.
    """
    context = resources.files("sailplan").joinpath("proxy_image")
    # docker-build needs a directory on disk; sailplan is never installed zipped (no zip-safe).
    return Path(str(context))


_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class ProxyImageArgs:
    """What `ProxyImage` provides: exactly one of

    image: an existing image reference, used as is (a string, or an Output such as another
        resource's digest);
    repository: build `sailplan/proxy_image/` (shipped in the package) with docker-build and tag
        it `<repository>:<tag>`; `push` pushes it, to `registry` with `username`/`password`
        when given (all three together; the password is kept secret).

    context: another build context directory instead of the packaged one.
    Every argument is checked on construction; a wrong one raises `ArgsError` naming it.
    """

    image: pulumi.Input[str] | None = None
    repository: pulumi.Input[str] | None = None
    tag: str = "0.1.0"
    push: bool = False
    context: str | Path | None = None
    registry: str | None = None
    username: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        where = "ProxyImageArgs"
        if (self.image is None) == (self.repository is None):
            raise ArgsError(
                where,
                "give either image= (an existing image reference) or repository= "
                "(to build one), exactly one of them",
            )
        if self.image is not None:
            require_input_str(f"{where}.image", self.image, "an image reference")
        if self.repository is not None:
            require_input_str(f"{where}.repository", self.repository, "an image repository")
        if not isinstance(self.tag, str) or not _TAG.fullmatch(self.tag):
            raise ArgsError(
                f"{where}.tag",
                f"{self.tag!r} is not an image tag: use letters, digits, '_', '.' and '-', "
                "at most 128 characters, not starting with '.' or '-'",
            )
        require_bool(f"{where}.push", self.push)
        if self.context is not None and not isinstance(self.context, str | Path):
            raise ArgsError(
                f"{where}.context",
                f"must be a directory path, not {type(self.context).__name__}",
            )
        credentials = (self.registry, self.username, self.password)
        if any(v is not None for v in credentials) and any(v is None for v in credentials):
            raise ArgsError(
                f"{where}.registry",
                "registry=, username= and password= log in to a registry together: "
                "give all three or none",
            )
        if self.registry is not None:
            require_str(f"{where}.registry", self.registry, "a registry address")


class ProxyImage(pulumi.ComponentResource):
    """The proxy image of the builtin data plane (HAProxy and iptables, from Debian).

    Builds the Dockerfile shipped in the package (`sailplan/proxy_image/`, found with
    importlib.resources, so a plain `pip install` suffices) for linux/amd64, or passes an
    existing reference through. `ref` is the image reference pods should use: with a build,
    `<repository>:<tag>@sha256:<digest>`, so a new build rolls the pods.
    """

    ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: ProxyImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not isinstance(args, ProxyImageArgs):
            raise ArgsError("ProxyImage.args", f"must be ProxyImageArgs, not {type(args).__name__}")
        context = Path(args.context) if args.context else default_context()
        if args.image is None and not (context / "Dockerfile").exists():
            raise ArgsError(
                "ProxyImageArgs.context",
                f"no Dockerfile in {context}: point context= at a copy of sailplan/proxy_image/",
            )
        super().__init__("sailplan:index:ProxyImage", name, None, opts)
        if args.image is not None:
            self.ref = pulumi.Output.from_input(args.image)
        else:
            assert args.repository is not None  # ProxyImageArgs checked: image or repository
            registries = None
            if args.registry is not None:
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
                tags=[pulumi.Output.concat(args.repository, ":", args.tag)],
                push=args.push,
                registries=registries,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ref = image.ref
        self.register_outputs({"ref": self.ref})
