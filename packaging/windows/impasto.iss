; Inno Setup script: a per-user install of impasto.exe (no administrator rights).
; Built by .github/workflows/release.yml on windows-latest:
;   iscc /DAppVersion=0.1.0 /DBinary=..\out\impasto.exe packaging\windows\impasto.iss
; It cannot be built or run on Linux.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef Binary
  #define Binary "..\out\impasto.exe"
#endif

[Setup]
AppId={{6F1C2A0E-4E55-4B7B-9C1E-1D3B8D1A7A11}
AppName=Impasto
AppVersion={#AppVersion}
AppPublisher=Impasto
DefaultDirName={localappdata}\Programs\Impasto
DefaultGroupName=Impasto
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
OutputDir=..\out
OutputBaseFilename=impasto-{#AppVersion}-windows-x64-setup
Compression=lzma2
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
UninstallDisplayIcon={app}\impasto.exe
CloseApplications=yes

[Tasks]
Name: "autostart"; Description: "Start Impasto (tray icon) when I log in"; GroupDescription: "Startup:"
Name: "desktopicon"; Description: "Create a desktop shortcut"; GroupDescription: "Shortcuts:"; Flags: unchecked

[Files]
Source: "{#Binary}"; DestDir: "{app}"; DestName: "impasto.exe"; Flags: ignoreversion

[Icons]
Name: "{group}\Impasto"; Filename: "{app}\impasto.exe"; Parameters: "tray"; Comment: "Local Stable Diffusion"
Name: "{group}\Uninstall Impasto"; Filename: "{uninstallexe}"
Name: "{userdesktop}\Impasto"; Filename: "{app}\impasto.exe"; Parameters: "tray"; Tasks: desktopicon

[Run]
Filename: "{app}\impasto.exe"; Parameters: "tray"; Description: "Start Impasto now"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; Stop the tray and the daemon first so that their files can be removed; models and outputs
; stay. /F: without it taskkill only asks windows to close, and the daemon has none.
Filename: "{sys}\taskkill.exe"; Parameters: "/F /T /IM impasto.exe"; Flags: runhidden; RunOnceId: "StopImpasto"

[Registry]
; The same HKCU Run value the tray's "Start at login" toggle writes, so the two agree.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "Impasto"; ValueData: """{app}\impasto.exe"" tray"; Tasks: autostart; Flags: uninsdeletevalue

; Uninstall keeps %LOCALAPPDATA%\impasto (models, outputs, database) unless the user deletes it.

[Code]
// The tray's "Start at login" writes the same Run value without this installer's task: remove
// it too, or Windows would run a deleted impasto.exe at every login.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RegDeleteValue(HKCU, 'Software\Microsoft\Windows\CurrentVersion\Run', 'Impasto');
end;
