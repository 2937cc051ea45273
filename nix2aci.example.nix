# A spec written in Nix: nix2aci build nix2aci.example.nix [--argstr tag v1]
{ tag ? "dev" }:
let pkgs = import ./fixtures { }; in
{
  outDir = "ACIs";
  images = [
    { name = "etcd-${tag}"; binary = "etcd"; packages = [ pkgs.etcd pkgs.busybox ]; port = [ "client:tcp:2379" ]; }
    { name = "hello-nix"; kind = "fat"; binary = "hello"; packages = [ pkgs.hello ]; label = [ "package=${pkgs.hello.name}" ]; }
  ];
}
